"""Many scenes' per-view statistics (eig/view_stats.py) -> means and 95 % intervals by the hierarchical bootstrap.

Aggregation is over views: every per-view measure (AUROC of a view, its Spearman, ...) is averaged over the
views of a scene, then over scenes (each scene weighs the same; views where a measure is undefined, e.g. a
view without unobserved pixels, are skipped), and `eval/bootstrap.py` resamples scenes, then views within
them. Per shift key, signed ("+3.0") and by magnitude ("3.0": both signs' views of a scene pooled):

    maps         {map: {measure: {mean, lo, hi, views}}}
    differences  {map: {measure: {mean, lo, hi}}}: the paired per-view difference map - reference
    retained     {map: {curve: [{fraction, psnr, lo, hi}], monotone, rises}}: PSNR of the mean retained MSE over
                 views (the lowest-uncertainty fraction of each view's pixels) and its interval, with the
                 oracle order by L1 as map "error"; `monotone`: the mean curve falls at every step as pixels
                 are admitted (`rises`: the steps where it does not)
    psnr_view    the mean PSNR of the views' sampled pixels; prevalence: the mean share of mask pixels (the AP
                 of a random map)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from faithfusion.utils.atomic import atomic_write

LOWER_IS_BETTER = ("ause_l1",)


def _num(x) -> float:
    return float("nan") if x is None else float(x)


def shift_keys(scenes: list[dict]) -> dict[str, list[float]]:
    """{"+3.0": [3.0], "-3.0": [-3.0], "3.0": [3.0, -3.0], ...} over the shifts the views have."""
    shifts = sorted({v["shift"] for s in scenes for v in s["views"]}, key=lambda d: (abs(d), -d))
    keys = {f"{d:+.1f}": [d] for d in shifts}
    for mag in sorted({abs(d) for d in shifts}):
        keys[f"{mag:.1f}"] = [d for d in shifts if abs(d) == mag]
    return keys


def _columns(scene: dict, maps: list[str], measures: list[str], reference: str, curve_maps: list[str],
             kinds: list[str]) -> tuple[list[str], np.ndarray]:
    """Column names and the `[V, K]` table of one scene's views (one row per view)."""
    names = [f"m|{m}|{q}" for m in maps for q in measures]
    names += [f"d|{m}|{q}" for m in maps if m != reference for q in measures]
    names += [f"r|{m}|{k}" for m in curve_maps for k in range(len(scene["fractions"]))]
    names += ["psnr_view"] + [f"prevalence|{k}" for k in kinds]
    rows = []
    for v in scene["views"]:
        meas = v["measures"]
        vals = [_num(meas[m].get(q)) for m in maps for q in measures]
        vals += [_num(meas[m].get(q)) - _num(meas[reference].get(q)) for m in maps if m != reference for q in measures]
        vals += [x for m in curve_maps for x in v["retained_mse"][m]]
        vals += [v["psnr"]] + [v["positives"].get(k, 0) / max(v["pixels"], 1) for k in kinds]
        rows.append(vals)
    return names, np.asarray(rows, np.float64).reshape(len(rows), len(names))


def aggregate(scenes: list[dict], reference: str, n: int = 2000, seed: int = 0) -> dict:
    """The summary of the module docstring from the per-scene statistics (`scene_view_stats` results)."""
    from faithfusion.eval.bootstrap import hierarchical_bootstrap
    from faithfusion.eval.uncertainty import is_falling

    maps = [m for m in scenes[0]["maps"] if all(m in s["maps"] for s in scenes)]
    if reference not in maps:
        raise ValueError(f"reference map {reference!r} is not among the maps {maps}")
    measures = [q for q in scenes[0]["measures"] if all(q in s["measures"] for s in scenes)]
    kinds = [k for k in ("unobserved", "disoccluded") if f"auroc_{k}" in measures]
    curve_maps = [*maps, "error"]
    fractions = scenes[0]["fractions"]
    out: dict = {}
    for key, ds in shift_keys(scenes).items():
        per_scene, names = [], []
        for s in scenes:
            sub = dict(s, views=[v for v in s["views"] if v["shift"] in ds])
            if sub["views"]:
                names, table = _columns(sub, maps, measures, reference, curve_maps, kinds)
                per_scene.append(table)
        ci = hierarchical_bootstrap(per_scene, n=n, seed=seed)
        col = {c: k for k, c in enumerate(names)}
        counts = sum(np.isfinite(t).sum(0) for t in per_scene)

        def cell(c: str, with_views: bool = True) -> dict:
            k = col[c]
            r = {"mean": _finite(ci.mean[k]), "lo": _finite(ci.lo[k]), "hi": _finite(ci.hi[k])}
            return r | ({"views": int(counts[k])} if with_views else {})

        entry = {
            "scenes": ci.n_scenes, "views": ci.n_views, "psnr_view": cell("psnr_view", False),
            "prevalence": {k: cell(f"prevalence|{k}", False) for k in kinds},
            "maps": {m: {q: cell(f"m|{m}|{q}") for q in measures} for m in maps},
            "differences": {m: {q: cell(f"d|{m}|{q}") for q in measures} for m in maps if m != reference},
            "retained": {},
        }
        for m in curve_maps:
            rows = []
            for k, f in enumerate(fractions):
                c = col[f"r|{m}|{k}"]
                rows.append({"fraction": f, "psnr": _psnr(ci.mean[c]), "lo": _psnr(ci.hi[c]), "hi": _psnr(ci.lo[c])})
            psnr = [r["psnr"] for r in rows if r["psnr"] is not None]
            entry["retained"][m] = {"curve": rows, "monotone": is_falling(psnr),
                                    "rises": int(sum(b > a for a, b in zip(psnr, psnr[1:])))}
        out[key] = entry
    return out


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _psnr(mse: float) -> float | None:
    return float(-10.0 * np.log10(max(mse, 1e-12))) if np.isfinite(mse) else None


def _fmt(c: dict) -> str:
    if c["mean"] is None:
        return "n/a"
    lo = "?" if c["lo"] is None else f"{c['lo']:.3f}"
    hi = "?" if c["hi"] is None else f"{c['hi']:.3f}"
    return f"{c['mean']:.3f} [{lo}, {hi}]"


def markdown_report(summary: dict) -> str:
    """Tables of every map x measure (mean [95 % CI]) and of the paired differences, per shift key."""
    lines = [f"# EIG analysis over {len(summary['scenes'])} scenes", "",
             f"Mean over scenes of the per-view mean, [95 % interval] of a hierarchical bootstrap ({summary['bootstrap']['n']} "
             f"resamples of scenes, then views; seed {summary['bootstrap']['seed']}). Higher is better except "
             f"{', '.join(LOWER_IS_BETTER)}. Differences are paired per view: map - {summary['reference']}.", ""]
    for kind, status in summary["masks"].items():
        if status != "present":
            lines.append(f"- {kind}: {status}")
    lines.append(f"- unconstrained Gaussians: {summary['unconstrained_rule']}")
    lines.append("")
    for key, e in summary["per_shift"].items():
        measures = list(next(iter(e["maps"].values())))
        head = "| map | " + " | ".join(measures) + " | retained PSNR falls |"
        sep = "|" + " --- |" * (len(measures) + 2)
        lines += [f"## shift {key} m ({e['scenes']} scenes, {e['views']} views, view PSNR {_fmt(e['psnr_view'])})", ""]
        if e["prevalence"]:
            lines += ["Prevalence (AP of a random map): " + ", ".join(f"{k} {_fmt(c)}" for k, c in e["prevalence"].items()), ""]
        lines += [head, sep]
        for m, row in e["maps"].items():
            lines.append(f"| {m} | " + " | ".join(_fmt(row[q]) for q in measures)
                         + f" | {'yes' if e['retained'][m]['monotone'] else 'no'} |")
        lines += ["", f"Paired differences vs {summary['reference']}:", "", head.replace(" retained PSNR falls |", ""),
                  "|" + " --- |" * (len(measures) + 1)]
        for m, row in e["differences"].items():
            lines.append(f"| {m} - {summary['reference']} | " + " | ".join(_fmt(row[q]) for q in measures) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def plot_retained(summary: dict, path: Path) -> None:
    """Retained-pixel PSNR against the retained fraction with its 95 % band, one panel per shift magnitude."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in summary["per_shift"] if not k.startswith(("+", "-"))]
    fig, axes = plt.subplots(1, len(keys), figsize=(6 * len(keys), 4.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for m, r in summary["per_shift"][key]["retained"].items():
            rows = [x for x in r["curve"] if x["psnr"] is not None]
            f = [x["fraction"] for x in rows]
            line = ax.plot(f, [x["psnr"] for x in rows], marker=".", label=m, linestyle="--" if m == "error" else "-")[0]
            ax.fill_between(f, [x["lo"] for x in rows], [x["hi"] for x in rows], color=line.get_color(), alpha=0.15)
        ax.set_title(f"|shift| = {key} m ({summary['per_shift'][key]['scenes']} scenes)")
        ax.set_xlabel("retained fraction of each view's pixels (lowest uncertainty first)")
        ax.set_ylabel("PSNR of retained pixels (dB)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, save=lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
