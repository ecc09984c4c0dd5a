"""Rounds on a step schedule, and the round-boundary checkpoints that make a fusion run resumable.

A method is a list of `Round`s (at step s, do X) and the code that does X. `run_rounds` trains to
each round's step, lets the method act, then writes RUN/ckpt/round_XXX.pt: the trainer's state, the
method's pools (their images included) and the method's own state. A resumed run loads the newest
one and continues with the next round, so it repeats the uninterrupted run exactly.

Each round's row (RUN/rounds.jsonl) holds "seconds", the method's own work in the round, and "stages", the
wall seconds of the training steps before it ("train"), of the method's stages (those it times with
`method.timer`, a `StageTimer`) and of the round checkpoint ("checkpoint"); "wall_seconds" covers all of them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import torch


from faithfusion.train.views import ViewPool
from faithfusion.utils.atomic import append_line, atomic_torch_save
from faithfusion.utils.timing import StageTimer


@dataclass
class Round:
    index: int  # 0-based
    step: int  # the trainer step at which the round acts
    params: dict = field(default_factory=dict)  # what the round needs (e.g. {"shift": 2.0})


class FusionMethod(Protocol):
    """What the round loop needs from a method's schedule. A method may also have `attach(trainer)`, called
    once the shared Trainer is built (`runner.method_trainer`), to change the captured views (GenFusion's crop)."""

    name: str
    pools: list[ViewPool]

    def rounds(self, total: int) -> list[Round]: ...

    def run_round(self, trainer, rnd: Round) -> dict: ...

    def on_step(self, trainer, stats: dict) -> None: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict, trainer) -> None: ...


# --- checkpoints -------------------------------------------------------------------------------


def round_path(ckpt_dir: Path, completed: int) -> Path:
    return Path(ckpt_dir) / f"round_{completed:03d}.pt"


def latest_round(ckpt_dir: Path) -> Path | None:
    """The round checkpoint with the most completed rounds (the final one wins over its round)."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return None
    found = sorted((int(m.group(1)), p) for p in ckpt_dir.glob("round_*.pt") if (m := re.match(r"round_(\d+)\.pt$", p.name)))
    return found[-1][1] if found else None


def save_round(ckpt_dir: Path, completed: int, trainer, method: FusionMethod, final: bool = False, keep_last: int = 2) -> Path:
    """Write the state after `completed` rounds (atomically); keep the newest `keep_last` files."""
    from faithfusion.fusion.pools import pool_state

    path = round_path(ckpt_dir, completed)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "completed_rounds": completed,
        "final": final,
        "step": trainer.step,
        "trainer": trainer.state_dict(),
        "pools": [pool_state(p) for p in method.pools],
        "method": method.state_dict(),
    }
    atomic_torch_save(path, payload, "round checkpoint")
    olds = sorted(path.parent.glob("round_*.pt"))
    for old in olds[:-keep_last]:
        old.unlink()
    return path


def load_round(path: Path, trainer, method: FusionMethod) -> dict:
    """Restore pools, method and trainer from a round checkpoint (pools first: the trainer's
    state names their sampling order)."""
    from faithfusion.fusion.pools import load_pool_state

    state = torch.load(path, map_location="cpu", weights_only=False)
    for pool, ps in zip(method.pools, state["pools"]):
        if pool.name != ps["name"]:
            raise ValueError(f"{path}: pool {ps['name']!r} where {pool.name!r} was expected (another method's run?)")
        load_pool_state(pool, ps, trainer.device)
    trainer.load_state_dict(state["trainer"])
    method.load_state_dict(state["method"], trainer)
    return state


# --- the loop ----------------------------------------------------------------------------------


def run_rounds(
    trainer,
    method: FusionMethod,
    total: int,
    ckpt_dir: Path,
    resume: bool = False,
    stop_after: int = 0,
    progress: bool = True,
    log: Callable[[dict], None] | None = None,
) -> dict:
    """Train to `total` steps with the method's rounds; returns {"completed_rounds", "stopped", "rounds"}."""
    rounds = method.rounds(total)
    done = 0
    if resume and (last := latest_round(ckpt_dir)) is not None:
        done = int(load_round(last, trainer, method)["completed_rounds"])
        print(f"resumed {method.name} from {last}: {done} of {len(rounds)} rounds done, step {trainer.step}")
    timer = StageTimer(trainer.device)
    if hasattr(method, "timer"):  # a method that times its own stages
        method.timer = timer
    for rnd in rounds[done:]:
        start, first_step = timer.now(), trainer.step
        with timer.stage("train"):
            trainer.fit(rnd.step, progress=progress, on_step=method.on_step)
        t0 = timer.now()
        stats = method.run_round(trainer, rnd)
        seconds = timer.now() - t0
        done += 1
        with timer.stage("checkpoint"):
            save_round(ckpt_dir, done, trainer, method)
        row = {"round": rnd.index, "step": trainer.step, **rnd.params, **stats, "seconds": seconds,
               "train_steps": trainer.step - first_step, "stages": timer.take(), "wall_seconds": timer.now() - start}
        if log is not None:
            log(row)
        if stop_after and done >= stop_after:
            return {"completed_rounds": done, "stopped": True, "rounds": len(rounds)}
    trainer.fit(total, progress=progress, on_step=method.on_step)
    save_round(ckpt_dir, done, trainer, method, final=True)
    return {"completed_rounds": done, "stopped": False, "rounds": len(rounds)}


def jsonl_logger(path: Path) -> Callable[[dict], None]:
    """Append one JSON row per round to `path` (RUN/rounds.jsonl) and print it."""
    path = Path(path)

    def log(row: dict) -> None:
        line = json.dumps(row, default=float)
        print(f"round {row['round']} at step {row['step']}: {line}")
        append_line(path, line)

    return log
