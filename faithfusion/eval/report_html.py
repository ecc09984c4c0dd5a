"""One self-contained HTML page for one or more runs: tables, quality-against-shift plots, image strips, commands.

Everything is inlined (images as base64 PNG/JPEG, plots as SVG), so the page can be mailed or committed alone.
A run folder contributes what it holds:
  RUN/config.yaml              the run's configuration (method, data, schedule) and the command that trains it
  RUN/eval/lane_shift.json     the lane-shift protocol (PSNR / SSIM / LPIPS / FID / KID per shift)
  RUN/eval/holdout.json        the held-out protocol
  OUT/eval/sparse_views.json   GenFusion's sparse-view protocol (`faithfusion protocol sparse --out OUT`): one row
                               per number of training views and method
  RUN/eval/views/*.png         image strips (`save_view_strip`): ground truth, render, fixed at a few shifts
  RUN/eig/*_eig_cal.png        EIG heatmaps written by `faithfusion eig`
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from faithfusion.errors import UserError
from faithfusion.utils.atomic import atomic_write

VIEW_KINDS = ("gt", "render", "fixed")
VIEW_LABELS = {"gt": "ground truth", "render": "render", "fixed": "fixed", "eig": "EIG (calibrated)"}
METRIC_COLUMNS = [("psnr", "PSNR", "{:.2f}"), ("ssim", "SSIM", "{:.3f}"), ("lpips", "LPIPS", "{:.3f}"),
                  ("fid", "FID (gt)", "{:.1f}"), ("kid", "KID (gt) x1e3", "kid"),
                  ("fid_train", "FID (train)", "{:.1f}"), ("kid_train", "KID (train) x1e3", "kid"),
                  ("nta_iou", "NTA-IoU", "{:.3f}"), ("ntl_iou", "NTL-IoU", "{:.3f}"), ("count", "views", "{:d}")]


class ReportInputError(UserError, ValueError):
    """A folder given to the report that holds nothing to report."""


@dataclass
class RunReport:
    """What one run contributes to the page."""

    name: str
    folder: Path
    protocols: dict[str, dict] = field(default_factory=dict)
    """protocol name -> its result (lane-shift: by_magnitude / per_shift; holdout: mean)."""
    commands: list[str] = field(default_factory=list)
    config_text: str = ""
    strips: dict[str, dict[str, Path]] = field(default_factory=dict)
    """shift label -> {kind: image file}, kinds of VIEW_KINDS and "eig"."""


def save_view_strip(folder: Path, views: dict[float, dict[str, object]]) -> list[Path]:
    """Write `folder/{shift:+.1f}_{kind}.png` for images `[H, W, 3]` in [0, 1] (kinds: gt, render, fixed)."""
    import numpy as np
    from PIL import Image

    written = []
    for d, kinds in views.items():
        for kind, img in kinds.items():
            arr = (np.clip(np.asarray(img.detach().cpu() if hasattr(img, "detach") else img), 0, 1) * 255).round().astype(np.uint8)
            path = Path(folder) / f"{d:+.1f}_{kind}.png"
            atomic_write(path, save=lambda tmp, a=arr: Image.fromarray(a).save(tmp, format="PNG"), what="report view")
            written.append(path)
    return written


def run_command(config: dict, folder: Path) -> str:
    """The command that trains this run again, from its config.yaml."""
    method = (config.get("_run") or {}).get("method")
    head = f"faithfusion fuse {method}" if method else "faithfusion recon"
    parts = [head, f"--data {config.get('data')}", f"--out {folder}"]
    if config.get("steps") is not None:
        parts.append(f"--steps {config['steps']}")
    return " ".join(parts)


def collect_run(folder: Path, name: str | None = None) -> RunReport:
    """Read what a run folder holds for the report (see the module doc)."""
    folder = Path(folder)
    cfg_path = folder / "config.yaml"
    config: dict = {}
    if cfg_path.is_file():
        try:
            config = yaml.safe_load(cfg_path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ReportInputError(f"{cfg_path}: cannot read the run's config ({e})") from e
    method = (config.get("_run") or {}).get("method") if isinstance(config, dict) else None
    rep = RunReport(name or method or folder.name, folder)
    if config:
        rep.config_text = cfg_path.read_text()
        rep.commands.append(run_command(config, folder))
    for proto, file in (("lane-shift", "lane_shift.json"), ("holdout", "holdout.json"), ("sparse-views", "sparse_views.json")):
        path = folder / "eval" / file
        if path.is_file():
            try:
                rep.protocols[proto] = json.loads(path.read_text())
            except json.JSONDecodeError as e:
                raise ReportInputError(f"{path}: not readable JSON ({e})") from e
            cmd = rep.protocols[proto].get("command")
            if cmd:
                rep.commands.append(cmd)
    views = folder / "eval" / "views"
    if views.is_dir():
        for p in sorted(views.glob("*.png")):
            shift, _, kind = p.stem.partition("_")
            rep.strips.setdefault(shift, {})[kind] = p
    eig = sorted((folder / "eig").glob("*_eig_cal.png")) if (folder / "eig").is_dir() else []
    if eig:
        rep.strips.setdefault("+0.0", {})["eig"] = eig[0]
    if not rep.protocols and not rep.strips:
        raise ReportInputError(f"{folder}: no evaluation to report (run `faithfusion eval --run {folder}` first)")
    return rep


def _b64_image(path: Path, max_width: int = 480) -> str:
    """An <img> with the file inlined (PNG kept; large images resized)."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        if im.width > max_width:
            im = im.resize((max_width, round(im.height * max_width / im.width)), Image.Resampling.BOX)
        buf = io.BytesIO()
        im.save(buf, format="PNG")
    data = base64.b64encode(buf.getvalue()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(path.name)}">'


def _fmt(value, fmt: str) -> str:
    if value is None:
        return "-"
    if fmt == "kid":
        return f"{1e3 * value:.2f}"
    if fmt == "{:d}":
        return str(int(value))
    return fmt.format(value)


def metric_cells(v: dict) -> str:
    """The METRIC_COLUMNS cells of one result row (KID with its spread over subsets)."""
    cells = []
    for key, _, fmt in METRIC_COLUMNS:
        text = _fmt(v.get(key), fmt)
        std_key = {"kid": "kid_std", "kid_train": "kid_train_std"}.get(key)
        if std_key and v.get(std_key):
            text += f" &plusmn; {1e3 * v[std_key]:.2f}"
        cells.append(f"<td>{text}</td>")
    return "".join(cells)


def lane_shift_table(runs: list[RunReport]) -> str:
    rows = []
    for r in runs:
        by = r.protocols.get("lane-shift", {}).get("by_magnitude", {})
        for mag in sorted(by, key=float):
            rows.append(f"<tr><td>{html.escape(r.name)}</td><td>{float(mag):g} m</td>{metric_cells(by[mag])}</tr>")
    head = "".join(f"<th>{label}</th>" for _, label, _ in METRIC_COLUMNS)
    return f"<table><tr><th>method</th><th>|shift|</th>{head}</tr>{''.join(rows)}</table>"


def holdout_table(runs: list[RunReport]) -> str:
    rows = []
    for r in runs:
        mean = r.protocols.get("holdout", {}).get("mean")
        if mean:
            cells = "".join(f"<td>{_fmt(mean.get(k), f)}</td>" for k, _, f in METRIC_COLUMNS[:3])
            rows.append(f"<tr><td>{html.escape(r.name)}</td>{cells}</tr>")
    head = "".join(f"<th>{label}</th>" for _, label, _ in METRIC_COLUMNS[:3])
    return f"<table><tr><th>method</th>{head}</tr>{''.join(rows)}</table>"


def sparse_views_table(runs: list[RunReport]) -> str:
    """One row per protocol folder, number of training views and method (held-out frames' means)."""
    rows = []
    for r in runs:
        res = r.protocols.get("sparse-views", {})
        for n in sorted(res.get("results", {}), key=int):
            for method, cell in res["results"][n].items():
                flag = " (untrained identity fixer)" if cell.get("identity_fixer") else ""
                rows.append(f"<tr><td>{html.escape(r.name)}</td><td>{int(n)}</td><td>{html.escape(method + flag)}</td>"
                            f"{metric_cells(cell.get('mean', {}))}</tr>")
    head = "".join(f"<th>{label}</th>" for _, label, _ in METRIC_COLUMNS).replace("<th>views</th>", "<th>held-out views</th>")
    return f"<table><tr><th>protocol</th><th>training views</th><th>method</th>{head}</tr>{''.join(rows)}</table>"


def sparse_views_notes(runs: list[RunReport]) -> str:
    """The training frames of each N and the protocol's settings, under its table."""
    items = []
    for r in runs:
        res = r.protocols.get("sparse-views")
        if not res:
            continue
        s = res.get("settings", {})
        splits = "; ".join(f"{n}: {', '.join(sp.get('train_names', map(str, sp['train_ids'])))}"
                           for n, sp in sorted(res.get("splits", {}).items(), key=lambda kv: int(kv[0])))
        items.append(f"<li>{html.escape(r.name)}: {html.escape(str(s.get('data')))}, {s.get('steps')} steps, scale "
                     f"{s.get('scale')}, evaluated: {html.escape(str(s.get('eval_views')))} (every "
                     f"{s.get('holdout_every')}-th frame when holdout). Training frames {html.escape(splits)}</li>")
    return f"<ul>{''.join(items)}</ul>" if items else ""


def shift_plot_svg(runs: list[RunReport]) -> str:
    """Quality against |shift| for every run that has the lane-shift protocol, as inline SVG."""
    from faithfusion.eval.lane_shift import lane_shift_figure

    curves = {r.name: r.protocols["lane-shift"]["by_magnitude"] for r in runs if "lane-shift" in r.protocols}
    if not curves:
        return ""
    import matplotlib.pyplot as plt

    fig = lane_shift_figure(curves)
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def strips_html(runs: list[RunReport]) -> str:
    parts = []
    for r in runs:
        if not r.strips:
            continue
        rows = []
        for shift in sorted(r.strips, key=float):
            cells = "".join(f"<figure>{_b64_image(p)}<figcaption>{VIEW_LABELS.get(kind, kind)}</figcaption></figure>"
                            for kind in (*VIEW_KINDS, "eig") if (p := r.strips[shift].get(kind)) is not None)
            rows.append(f"<div class='strip'><div class='shift'>{float(shift):+g} m</div>{cells}</div>")
        parts.append(f"<h3>{html.escape(r.name)}</h3>{''.join(rows)}")
    return "".join(parts)


CSS = """body{font-family:system-ui,sans-serif;margin:24px;max-width:1400px;color:#222}
table{border-collapse:collapse;margin:8px 0 20px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}th{background:#f3f3f3}.strip{display:flex;gap:6px;align-items:center}
.shift{width:60px;font-weight:bold}figure{margin:2px}figcaption{font-size:12px;text-align:center}
img{max-width:320px}pre{background:#f7f7f7;padding:8px;overflow-x:auto;font-size:12px}svg{max-width:100%;height:auto}"""


def render_html(runs: list[RunReport], title: str = "FaithFusion report", notes: list[str] | None = None) -> str:
    body = [f"<h1>{html.escape(title)}</h1>"]
    if notes:
        body.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    if any("lane-shift" in r.protocols for r in runs):
        body += ["<h2>Lane shift</h2>",
                 "<p>Shift 0: held-out frames of the recorded lane; |d| &gt; 0: every evaluated frame from an ego moved "
                 "d metres sideways (both signs pooled) against exact ground truth. FID/KID (gt): renders against the "
                 "ground truth of the same views; (train): against the captured training frames. FID of a few dozen "
                 "images is biased upwards: read KID (unbiased) beside it, and docs/eval.md for the floor.</p>",
                 lane_shift_table(runs), shift_plot_svg(runs)]
    if any("sparse-views" in r.protocols for r in runs):
        body += ["<h2>Sparse views (GenFusion's protocol)</h2>",
                 "<p>Each method trained on N captured views only and scored on frames it was not trained on, with its "
                 "own render (Difix3D+ fixes it). The fixers' novel views lie between neighbouring training views. "
                 "FID/KID (gt): renders against the held-out images; (train): against the training images. With a "
                 "few views FID is biased upwards: read KID (docs/sparse_views.md).</p>",
                 sparse_views_table(runs), sparse_views_notes(runs)]
    if any("holdout" in r.protocols for r in runs):
        body += ["<h2>Held-out frames</h2>", holdout_table(runs)]
    strips = strips_html(runs)
    if strips:
        body += ["<h2>Views</h2>", strips]
    body.append("<h2>Commands</h2>")
    for r in runs:
        body.append(f"<h3>{html.escape(r.name)}</h3><pre>{html.escape(chr(10).join(r.commands) or '(no command recorded)')}</pre>")
        if r.config_text:
            body.append(f"<details><summary>config.yaml</summary><pre>{html.escape(r.config_text)}</pre></details>")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>")


def write_html_report(out: Path, runs: list[RunReport], title: str = "FaithFusion report",
                      notes: list[str] | None = None) -> Path:
    """Write the page to `out` (one file, nothing linked)."""
    if not runs:
        raise ReportInputError("the report needs at least one run folder")
    atomic_write(out, render_html(runs, title, notes), what="HTML report")
    return Path(out)
