"""`faithfusion view` in a real browser: start the viewer on a tiny scene in a subprocess, open it in headless
Chromium (Debian's `chromium`, driven by Playwright from PyPI, no browser download), wait for a rendered frame,
move the lane-shift slider and check that the picture changed.

Skips, saying why, where no Chromium binary is installed (`apt-get install chromium`; or set
$FAITHFUSION_CHROMIUM to a Chromium/Chrome binary). `python tests/test_viewer_browser.py RUN OUT.png [SHIFT]`
takes the docs screenshot of any run the same way.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.viewer_fixtures import tiny_view_run  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[1]
VIEWPORT = {"width": 1000, "height": 600}
CANVAS_REGION = (slice(160, 560), slice(100, 580))
"""Rows, columns of the screenshot that show only the rendered view (clear of the control panel on the right,
the notification at the top left and the axes at the bottom left)."""


def chromium_binary() -> str | None:
    env = os.environ.get("FAITHFUSION_CHROMIUM")
    if env:
        return env if Path(env).is_file() else None
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_viewer(run: Path, port: int, timeout: float = 90.0) -> subprocess.Popen:
    """`faithfusion view --run RUN --port PORT --device cpu` in a subprocess, returned once it serves."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "faithfusion.cli", "view", "--run", str(run), "--port", str(port),
                             "--device", "cpu"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline, seen = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            raise RuntimeError(f"the viewer exited with {proc.returncode}:\n{''.join(seen)}")
        seen.append(line)
        if "faithfusion view:" in line and f":{port}" in line:
            return proc
    proc.kill()
    raise TimeoutError(f"the viewer did not start within {timeout:.0f} s:\n{''.join(seen)}")


def rendered_count(page) -> int:
    m = re.search(r"frames rendered: (\d+)", page.inner_text("body"))
    return int(m.group(1)) if m else 0


def wait_for_render(page, after: int, text: str = "", timeout: float = 30.0) -> None:
    """Until the status line counts more than `after` renders (and shows `text`), then a moment for the image."""
    page.wait_for_function(
        "([after, text]) => { const m = document.body.innerText.match(/frames rendered: (\\d+)/);"
        " return m && Number(m[1]) > after && document.body.innerText.includes(text); }",
        arg=[after, text], timeout=timeout * 1000)
    time.sleep(0.7)  # the background image is decoded and drawn on the next animation frames


def shot(page, path: Path) -> np.ndarray:
    from PIL import Image

    page.screenshot(path=str(path))
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def drive_viewer(run: Path, out_dir: Path, shift_key: str = "End", layer: str | None = None) -> dict:
    """Open the viewer of `run` in headless Chromium, screenshot, move the lane-shift slider, screenshot again."""
    from playwright.sync_api import sync_playwright

    port = free_port()
    proc = start_viewer(run, port)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_binary(), headless=True,
                                        args=["--no-sandbox", "--use-gl=angle", "--use-angle=swiftshader",
                                              "--enable-unsafe-swiftshader"])
            try:
                page = browser.new_page(viewport=VIEWPORT)
                page.goto(f"http://127.0.0.1:{port}")
                wait_for_render(page, 0, "+0.0 m", timeout=60)
                page.add_style_tag(content='[class*="Notification"] { display: none !important; }')  # WebGL notice
                if layer is not None:
                    page.get_by_role("textbox", name="layer").or_(page.locator("input[value='render']")).first.click()
                    page.get_by_role("option", name=layer, exact=True).click()
                    wait_for_render(page, rendered_count(page) - 1, f"**{layer}**".strip("*"), timeout=60)
                before = shot(page, out_dir / "before.png")
                n = rendered_count(page)
                slider = page.locator('[role="slider"][aria-valuemin="-6"]')
                slider.focus()
                slider.press(shift_key)
                value = float(slider.get_attribute("aria-valuenow"))
                wait_for_render(page, n, f"{value:+.1f} m", timeout=60)
                after = shot(page, out_dir / "after.png")
            finally:
                browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return {"before": before, "after": after, "shift": value, "after_png": out_dir / "after.png"}


def test_the_lane_shift_slider_changes_the_rendered_view_in_chromium(tiny_view_run, tmp_path):  # noqa: F811
    if chromium_binary() is None:
        pytest.skip("no Chromium binary (install Debian's `chromium` package or set $FAITHFUSION_CHROMIUM)")
    pytest.importorskip("playwright.sync_api", reason="playwright (the test extra) is not installed")
    r = drive_viewer(tiny_view_run, tmp_path)
    assert r["shift"] == 6.0
    rows, cols = CANVAS_REGION
    region_before, region_after = r["before"][rows, cols], r["after"][rows, cols]
    assert region_before.std() > 3.0, "no rendered image on the canvas before the slider moved"
    assert np.abs(region_before - region_after).mean() > 3.0, "moving the lane-shift slider left the view unchanged"


if __name__ == "__main__":  # the docs screenshot: python tests/test_viewer_browser.py RUN OUT.png
    out = Path(sys.argv[2])
    res = drive_viewer(Path(sys.argv[1]), out.parent, sys.argv[3] if len(sys.argv) > 3 else "End",
                       sys.argv[4] if len(sys.argv) > 4 else None)
    shutil.copy(res["after_png"], out)
    print(f"wrote {out} (shift {res['shift']:+.1f} m)")
