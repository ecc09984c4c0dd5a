"""What did a batch give? Its summary as JSON (OUT/batch_METHOD.json) and as a rich table."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from faithfusion.utils.jsonio import save_json_atomic


def summary_path(out: Path, method: str) -> Path:
    return Path(out) / f"batch_{method}.json"


def counts(results: list[dict]) -> dict:
    """Scenes finished now, finished before (skipped), and failed."""
    done = [r for r in results if r.get("status") == "done"]
    return {"done": sum(not r.get("skipped") for r in done), "skipped": sum(bool(r.get("skipped")) for r in done),
            "failed": sum(r.get("status") == "failed" for r in results), "total": len(results)}


def write_summary(out: Path, payload: dict) -> Path:
    return save_json_atomic(summary_path(out, payload["method"]), payload)


def summary_table(results: list[dict], title: str = "") -> Table:
    """One row per scene: status, where it resumed from, Gaussians, training time, held-out and lane-shift PSNR."""
    shifts = sorted({m for r in results for m in r.get("lane_shift_psnr", {})}, key=float)
    table = Table(title=title)
    for name in ("scene", "status", "resumed from", "Gaussians", "train s", "held-out PSNR", *[f"{m} m PSNR" for m in shifts]):
        table.add_column(name, justify="left" if name in ("scene", "status", "resumed from") else "right")
    for r in results:
        status = r.get("status", "?") + (" (skipped)" if r.get("skipped") else "")
        if r.get("status") == "failed":
            status += f": {r.get('error', '')}"[:80]
        psnr = r.get("test", {}).get("psnr")
        cells = [r.get("name", "?"), status, str(r.get("resumed_from") or "-"), str(r.get("num_gaussians") or "-"),
                 f"{r['train_seconds']:.0f}" if r.get("train_seconds") is not None else "-",
                 f"{psnr:.2f}" if psnr is not None else "-"]
        cells += [f"{r['lane_shift_psnr'][m]:.2f}" if m in r.get("lane_shift_psnr", {}) else "-" for m in shifts]
        table.add_row(*cells)
    return table


def print_summary(results: list[dict], title: str, console: Console | None = None) -> None:
    (console or Console()).print(summary_table(results, title))
