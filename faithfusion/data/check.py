"""`check_scene_images`: every image a run will read is checked when the scene is loaded.

A run reads its training images at the start and its held-out images only at evaluation; a
corrupt held-out image would otherwise surface after the whole training. The check is cheap: the
file header (format and size), the PNG chunk checksums (`Image.verify`) and, for a JPEG, the
end-of-image marker (a full decode only when it is not at the end), so a truncated file is found
without decoding the pixels of every image.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from faithfusion.data.images import image_size
from faithfusion.data.scene import SceneData, SceneError

JPEG_END = b"\xff\xd9"


def check_image_file(path: Path, size: tuple[int, int], what: str = "image") -> None:
    """SceneError naming `path` unless it is a readable, complete image of `size` = (width, height)."""
    path = Path(path)
    if not path.is_file():
        raise SceneError(f"{path}: {what} file is missing")
    if path.stat().st_size == 0:
        raise SceneError(f"{path}: {what} file is empty (0 bytes)")
    try:
        with Image.open(path) as img:
            fmt, found = img.format, img.size
            img.verify()  # PNG: every chunk's CRC up to IEND; a truncated PNG fails here
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise SceneError(f"{path}: cannot decode {what} ({type(e).__name__}: {e})") from e
    if fmt == "JPEG":
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - 64))
            complete = JPEG_END in f.read()
        if not complete:  # no end marker near the end: truncated, or data appended after it; decode to tell
            try:
                with Image.open(path) as img:
                    img.load()
            except (OSError, SyntaxError, ValueError) as e:
                raise SceneError(f"{path}: {what} file is truncated ({type(e).__name__}: {e})") from e
    if found != tuple(size):
        raise SceneError(f"{path}: wrong {what} size {found[0]}x{found[1]}, the camera expects {size[0]}x{size[1]}")


def check_scene_images(scene: SceneData) -> SceneData:
    """Check the image of every training and held-out frame (and its sky mask's header) before
    training; returns the scene unchanged."""
    for i in sorted(set(scene.train_ids) | set(scene.test_ids)):
        frame = scene.frames[i]
        check_image_file(frame.image_path, (frame.camera.width, frame.camera.height))
        if frame.sky_mask_path is not None:
            image_size(frame.sky_mask_path, "sky mask")
    return scene
