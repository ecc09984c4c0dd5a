"""The viser UI over `RunView`: a timeline of the recorded drive, a lane-shift slider, a layer menu, a free camera.

The image is sent as viser's scene background: in drive mode the recorded camera's view (letterboxed to the
browser's aspect, and the browser's camera is moved onto that pose), in free-camera mode a render from the
browser's own camera (orbit / pan / zoom with the mouse). One thread renders; controls only mark the view dirty,
so a slider dragged fast renders the latest state, not a queue of stale ones.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import numpy as np
import torch

from faithfusion.cameras import Camera, quat_to_rotmat, rotmat_to_quat
from faithfusion.viewer.frames import LAYER_TITLES, LAYERS, SHIFT_RANGE, RunView

SHIFT_STEP = 0.5


def letterbox(image: np.ndarray, aspect: float) -> np.ndarray:
    """uint8 `[H, W, 3]` padded with dark bars to width / height = `aspect` (image centred)."""
    h, w = image.shape[:2]
    if not aspect > 0 or abs(w / h - aspect) < 1e-3:
        return image
    if w / h < aspect:
        pad = round(h * aspect) - w
        return np.pad(image, ((0, 0), (pad // 2, pad - pad // 2), (0, 0)), constant_values=16)
    pad = round(w / aspect) - h
    return np.pad(image, ((pad // 2, pad - pad // 2), (0, 0), (0, 0)), constant_values=16)


def browser_camera(wxyz, position, fov: float, aspect: float, height: int) -> Camera:
    """A pinhole `Camera` from viser's camera state (OpenCV axes, vertical fov in radians) at `height` pixels."""
    c2w = torch.eye(4)
    c2w[:3, :3] = quat_to_rotmat(torch.as_tensor(np.asarray(wxyz), dtype=torch.float32))
    c2w[:3, 3] = torch.as_tensor(np.asarray(position), dtype=torch.float32)
    width = max(1, round(height * aspect))
    f = 0.5 * height / math.tan(0.5 * fov)
    K = torch.tensor([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])
    from faithfusion.cameras import invert_rigid

    return Camera(K=K, viewmat=invert_rigid(c2w), width=width, height=height, name="browser")


class ViewerServer:
    """`faithfusion view`'s server: builds the GUI on a viser server and renders on its own thread."""

    def __init__(self, view: RunView, host: str = "127.0.0.1", port: int = 8080) -> None:
        import viser

        self.view = view
        self.server = viser.ViserServer(host=host, port=port, verbose=False)
        self.port = self.server.get_port()
        self.rendered = 0
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._posed: set[int] = set()  # clients whose camera was put on the current drive pose
        self._build_gui()
        self.server.on_client_connect(self._on_connect)
        self._thread = threading.Thread(target=self._loop, name="faithfusion-viewer-render", daemon=True)
        self._thread.start()
        self._player = threading.Thread(target=self._play_loop, name="faithfusion-viewer-play", daemon=True)
        self._player.start()

    # --- GUI ----------------------------------------------------------------------------------

    def _build_gui(self) -> None:
        gui, info, view = self.server.gui, self.view.info, self.view
        self.server.gui.configure_theme(control_width="large")
        size = view.camera(view.drive()[0], 0.0)
        gui.add_markdown(
            f"**Run** `{info['run']}`  \n**Method** {info['method']}, {info['steps']} steps  \n"
            f"**Commit** `{info['commit'][:12]}`  \n**Device** {view.device.type}, view {size.width}x{size.height}"
        )
        names = view.cam_names
        self.cam = gui.add_dropdown("camera", tuple(names), initial_value=names[0])
        self.step = gui.add_slider("drive frame", min=0, max=max(1, len(view.drive(names[0])) - 1), step=1, initial_value=0)
        self.play = gui.add_checkbox("play drive", initial_value=False)
        self.shift = gui.add_slider("lane shift (m)", min=SHIFT_RANGE[0], max=SHIFT_RANGE[1], step=SHIFT_STEP,
                                    initial_value=0.0)
        self.layer = gui.add_dropdown("layer", LAYERS, initial_value="render")
        self.free = gui.add_checkbox("free camera", initial_value=False,
                                     hint="off: the recorded camera moved by the lane shift; on: orbit with the mouse")
        self.status = gui.add_markdown("frames rendered: 0")
        gui.add_markdown("Layers: " + "; ".join(f"**{k}** {v}" for k, v in LAYER_TITLES.items()))
        for handle in (self.cam, self.step, self.shift, self.layer):
            handle.on_update(lambda _: self._repose())
        self.free.on_update(lambda _: self._repose())

    def _on_connect(self, client) -> None:
        client.camera.on_update(lambda _: self._dirty.set() if self.free.value else None)
        self._repose()

    def _repose(self) -> None:
        """Controls changed: the browsers' cameras go back onto the drive pose (drive mode) and a render is due."""
        self._posed.clear()
        self._dirty.set()

    def frame_index(self) -> int:
        ids = self.view.drive(self.cam.value)
        return ids[min(int(self.step.value), len(ids) - 1)]

    # --- rendering ----------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            if not self._dirty.wait(0.2):
                continue
            self._dirty.clear()
            try:
                self.render_once()
            except Exception as e:  # keep serving: the status line shows what failed
                self.status.content = f"render failed: `{type(e).__name__}: {e}`"
                print(f"viewer: render failed: {type(e).__name__}: {e}")

    def render_once(self) -> None:
        clients = list(self.server.get_clients().values())
        if not clients:
            return
        t0 = time.perf_counter()
        layer, shift = self.layer.value, float(self.shift.value)
        note = ""
        if not self.free.value:
            frame = self.frame_index()
            out = self.view.layer(layer, frame, shift)
            for c in clients:
                self._pose_client(c, frame, shift)
                c.scene.set_background_image(letterbox(out.image, self._aspect(c)), format="jpeg", jpeg_quality=90)
            note = out.note
            where = f"frame {frame} (t={self.view.scene.frames[frame].timestep}), {shift:+.1f} m"
        else:
            where = "free camera"
            for c in clients:
                cam = self._client_camera(c)
                if cam is None:
                    continue
                out = self.view.layer(layer, None, shift, camera=cam)
                c.scene.set_background_image(out.image, format="jpeg", jpeg_quality=90)
                note = out.note
        self.rendered += 1
        ms = 1000 * (time.perf_counter() - t0)
        self.status.content = (f"frames rendered: {self.rendered}  \n{where}, **{layer}**, {ms:.0f} ms"
                               + (f"  \n{note}" if note else ""))

    @staticmethod
    def _aspect(client) -> float:
        try:
            return float(client.camera.aspect)
        except (AssertionError, ZeroDivisionError):
            return 0.0

    def _pose_client(self, client, frame: int, shift: float) -> None:
        """Put the browser's camera on the drive camera (so free camera starts there and overlays line up)."""
        if client.client_id in self._posed:
            return
        cam = self.view.native_camera(frame, shift)
        c2w = cam.camtoworld
        try:
            with client.atomic():
                client.camera.fov = float(2 * math.atan(0.5 * cam.height / float(cam.K[1, 1])))
                client.camera.wxyz = rotmat_to_quat(c2w[:3, :3].double()).numpy()
                client.camera.position = c2w[:3, 3].double().numpy()
        except AssertionError:  # camera state not received yet
            return
        self._posed.add(client.client_id)

    def _client_camera(self, client) -> Camera | None:
        try:
            c = client.camera
            aspect, fov, wxyz, position = float(c.aspect), float(c.fov), c.wxyz, c.position
        except (AssertionError, ZeroDivisionError):
            return None
        ref = self.view.camera(self.view.drive()[0], 0.0)
        height = ref.height if aspect <= ref.width / ref.height else max(1, round(ref.width / aspect))
        return browser_camera(wxyz, position, fov, aspect, height)

    def _play_loop(self) -> None:
        while not self._stop.is_set():
            time.sleep(0.25)
            if self.play.value:
                n = len(self.view.drive(self.cam.value))
                self.step.value = (int(self.step.value) + 1) % max(n, 1)

    def stop(self) -> None:
        self._stop.set()
        self.server.stop()


def serve(run: Path, port: int = 8080, host: str = "127.0.0.1", device: str = "auto", max_side: int | None = None,
          block: bool = True) -> ViewerServer:
    """Open `run` and serve it at http://host:port until interrupted (or return the server with block=False)."""
    view = RunView(run, device, max_side=max_side)
    server = ViewerServer(view, host, port)
    print(f"faithfusion view: {view.info['run']} (commit {view.info['commit'][:12]}) at http://{host}:{server.port}", flush=True)
    if block:
        try:
            while True:
                time.sleep(1.0)
        except KeyboardInterrupt:
            server.stop()
    return server

