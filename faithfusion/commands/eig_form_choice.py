"""`faithfusion eig-form-choice SUMMARY`: the written form-choice rule applied to a training-seed summary."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tyro


@dataclass
class FormChoiceConfig:
    """Print the EIG form the written rule picks from a training-seed `eig-analysis --runs` summary
    (eig/form_choice.py; docs/record/2026-12-04-eig-analysis-many-scenes.md)."""

    summary: tyro.conf.Positional[Path] = Path("eig_analysis.json")
    """eig_analysis.json of `faithfusion eig-analysis --runs` over the training seeds (with 3 m and 6 m rows)."""


def run_form_choice(cfg: FormChoiceConfig) -> str:
    from faithfusion.eig.form_choice import choose_form_file

    choice = choose_form_file(cfg.summary)
    print(choice.text())
    return choice.chosen
