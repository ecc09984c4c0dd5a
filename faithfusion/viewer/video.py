"""MP4 videos of a drive: frames encoded with imageio-ffmpeg's own ffmpeg (no system ffmpeg), panels side by side.

H.264 in yuv420p needs even sides, so frames are padded by a black row or column where odd; the file is
written to a temporary name and renamed over the target (a killed encode leaves no half video).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
from torch import Tensor

from faithfusion.cameras import Camera
from faithfusion.utils.atomic import atomic_write
from faithfusion.viewer.frames import ViewerError, resize_image, to_uint8


def pad_even(image: np.ndarray) -> np.ndarray:
    """uint8 `[H, W, 3]` padded with black to even H and W."""
    h, w = image.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return image
    return np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)))


def label(image: np.ndarray, text: str) -> np.ndarray:
    """A copy of uint8 `[H, W, 3]` with `text` on a dark band in its top-left corner."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(np.ascontiguousarray(image))
    draw = ImageDraw.Draw(img)
    box = draw.textbbox((3, 2), text)
    draw.rectangle((0, 0, min(img.width, box[2] + 3), box[3] + 2), fill=(0, 0, 0))
    draw.text((3, 2), text, fill=(255, 255, 255))
    return np.asarray(img)


def side_by_side(panels: Sequence[np.ndarray], gap: int = 4) -> np.ndarray:
    """uint8 panels `[H_k, W_k, 3]` resized to the first one's height and joined left to right with a dark gap."""
    if not panels:
        raise ViewerError("side_by_side: no panels")
    h = panels[0].shape[0]
    parts = []
    for k, p in enumerate(panels):
        w = max(1, round(p.shape[1] * h / p.shape[0]))
        if k:
            parts.append(np.full((h, gap, 3), 32, np.uint8))
        parts.append(resize_image(p, h, w))
    return np.concatenate(parts, axis=1)


def write_mp4(path: Path | str, frames: Iterable[np.ndarray], fps: float = 10.0) -> Path:
    """Encode uint8 frames `[H, W, 3]` (all one size) as H.264 MP4 at `fps`; returns `path`."""
    import imageio_ffmpeg

    path = Path(path)
    if not fps > 0:
        raise ViewerError(f"{path}: fps {fps} must be greater than 0")
    count = 0

    def save(tmp: Path) -> None:
        nonlocal count
        writer, size = None, None
        try:
            for f in frames:
                f = pad_even(np.ascontiguousarray(f, dtype=np.uint8))
                if size is None:
                    size = f.shape
                    writer = imageio_ffmpeg.write_frames(
                        str(tmp), (f.shape[1], f.shape[0]), fps=fps, codec="libx264", pix_fmt_out="yuv420p",
                        macro_block_size=1, output_params=["-f", "mp4"], ffmpeg_log_level="error")
                    writer.send(None)  # start ffmpeg
                elif f.shape != size:
                    raise ViewerError(f"{path}: frame {count} is {f.shape[1]}x{f.shape[0]}, the first was {size[1]}x{size[0]}")
                writer.send(f)
                count += 1
        finally:
            if writer is not None:
                writer.close()
        if count == 0:
            raise ViewerError(f"{path}: no frames to encode")

    atomic_write(path, save=save, what="video")
    return path


def render_fn_frames(render: Callable[[Camera], Tensor], cameras: Iterable[Camera]) -> Iterable[np.ndarray]:
    """uint8 frames of `render(camera) -> RGB [H, W, 3]` over `cameras` (a method's render function)."""
    import torch

    for cam in cameras:
        with torch.no_grad():
            yield to_uint8(render(cam))
