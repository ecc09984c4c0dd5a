"""Image and mask loading: full decode, resize to the scaled camera, OpenCV undistortion.

Pixel convention (gsplat's and COLMAP's): pixel (i, j) covers [j, j+1) x [i, i+1) and its centre
is (j + 0.5, i + 0.5). With it, scaling an image by `s` scales K by `s` exactly, which is what
`Camera.scaled` does.

Undistortion keeps the intrinsics: a Frame's K is used both as the undistorted pinhole camera
and as the K of the raw (distorted) image. For every output pixel we normalise with K, apply the
forward OpenCV model (k1, k2, p1, p2, k3), map back with K and sample the raw image bilinearly.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFile
from torch import Tensor

from faithfusion.data.frame import Frame, SceneError

# A truncated JPEG must fail to load, not come back half grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False


def distort_normalized(x: Tensor, y: Tensor, dist: tuple[float, ...]) -> tuple[Tensor, Tensor]:
    """Forward OpenCV model on normalised coordinates: undistorted (x, y) -> distorted (xd, yd).

    `dist` is (k1, k2, p1, p2, k3); a shorter tuple is padded with zeros.
    """
    k1, k2, p1, p2, k3 = (tuple(float(d) for d in dist) + (0.0,) * 5)[:5]
    r2 = x * x + y * y
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return xd, yd


@lru_cache(maxsize=8)  # a 1920x1280 grid is 20 MB: enough for 5 Waymo cameras at one scale
def _undistort_grid(K: tuple[float, ...], dist: tuple[float, ...], width: int, height: int) -> Tensor:
    """grid_sample grid [1, H, W, 2] of the raw-image positions seen by each undistorted pixel."""
    fx, fy, cx, cy = K
    v, u = torch.meshgrid(
        torch.arange(height, dtype=torch.float64) + 0.5,
        torch.arange(width, dtype=torch.float64) + 0.5,
        indexing="ij",
    )  # [H, W] pixel centres
    xd, yd = distort_normalized((u - cx) / fx, (v - cy) / fy, dist)
    ud, vd = fx * xd + cx, fy * yd + cy  # [H, W] source positions in pixels (corner convention)
    # align_corners=False: -1 and +1 are the outer edges of the image, i.e. pixel coords 0 and W.
    grid = torch.stack([2 * ud / width - 1, 2 * vd / height - 1], dim=-1)
    return grid[None].float()


def undistort_image(image: Tensor, K: Tensor, dist: Tensor | tuple[float, ...]) -> Tensor:
    """Undistort `image` [H, W, 3] float taken with intrinsics `K` [3, 3] and OpenCV `dist`.

    The output is the pinhole image with the same K. Pixels whose source falls outside the raw
    image are black (as cv2.undistort does).
    """
    height, width = image.shape[:2]
    Kt = (float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]))
    dist_t = tuple(float(d) for d in torch.as_tensor(dist).flatten().tolist())
    grid = _undistort_grid(Kt, dist_t, width, height).to(image.device)  # [1, H, W, 2]
    src = image.permute(2, 0, 1)[None].float()  # [1, 3, H, W]
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=False)
    inside = (grid.abs() <= 1.0).all(dim=-1)  # [1, H, W]
    out = out * inside[:, None].to(out.dtype)
    return out[0].permute(1, 2, 0).clamp(0.0, 1.0)  # [H, W, 3]


def _open_decoded(path: Path, what: str) -> Image.Image:
    """Open and fully decode an image file, raising SceneError naming the file on any problem."""
    path = Path(path)
    if not path.is_file():
        raise SceneError(f"{path}: {what} file is missing")
    try:
        img = Image.open(path)
        img.load()  # full decode: a truncated file raises here
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise SceneError(f"{path}: cannot decode {what} ({type(e).__name__}: {e})") from e
    return img


def to_8bit(img: Image.Image) -> Image.Image:
    """The image in 8 bits per channel with its own mode's meaning kept ("L", "RGB", "RGBA", ...).

    PIL's `convert` clips 16-bit and 32-bit integer pixels to 255 (a 16-bit PNG comes out nearly
    white); these are rescaled from their full range instead (65535 for 16-bit files), and float
    images from [0, 1].
    """
    if img.mode.startswith("I;16") or img.mode == "I":
        full = 65535.0 if img.mode.startswith("I;16") or np.asarray(img).max(initial=0) > 255 else 255.0
        arr = np.asarray(img, dtype=np.float64) * (255.0 / full)  # [H, W]
        return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), mode="L")
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64) * 255.0  # [H, W], float images are in [0, 1]
        return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), mode="L")
    return img


def to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB from grayscale, 16-bit, palette, RGBA (alpha dropped) or CMYK images."""
    img = to_8bit(img)
    return img if img.mode == "RGB" else img.convert("RGB")


def decoded_rgb(path: Path, what: str = "image") -> Image.Image:
    """The fully decoded image as 8-bit RGB; SceneError naming the file if it is missing or corrupt."""
    return to_rgb(_open_decoded(path, what))


def image_size(path: Path, what: str = "image") -> tuple[int, int]:
    """(width, height) from the file header only (cheap); SceneError if missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise SceneError(f"{path}: {what} file is missing")
    try:
        with Image.open(path) as img:
            return img.size
    except (OSError, SyntaxError, ValueError) as e:
        raise SceneError(f"{path}: cannot read {what} header ({type(e).__name__}: {e})") from e


def _resize(img: Image.Image, width: int, height: int, nearest: bool = False) -> Image.Image:
    if img.size == (width, height):
        return img
    if nearest:
        resample = Image.Resampling.NEAREST
    elif width <= img.width and height <= img.height:
        resample = Image.Resampling.BOX  # area average when shrinking
    else:
        resample = Image.Resampling.BICUBIC
    return img.resize((width, height), resample=resample)


def load_frame_image(frame: Frame, scale: float = 1.0) -> Tensor:  # [H, W, 3] float in [0, 1]
    """Decode the frame's image, resize it to the scaled camera and undistort it if needed."""
    path = Path(frame.image_path)
    img = _open_decoded(path, "image")
    cam = frame.camera
    if img.size != (cam.width, cam.height):
        raise SceneError(
            f"{path}: wrong image size {img.width}x{img.height}, the camera expects {cam.width}x{cam.height}"
        )
    img = to_rgb(img)
    scaled = cam.scaled(scale) if scale != 1.0 else cam
    img = _resize(img, scaled.width, scaled.height)
    image = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).float() / 255.0  # [H, W, 3]
    if frame.distortion is not None and bool(torch.as_tensor(frame.distortion).abs().sum() > 0):
        image = undistort_image(image, scaled.K, frame.distortion)
    return image


def load_raw_image(path: Path, max_width: int | None = None) -> tuple[Tensor, tuple[int, int]]:
    """The raw (distorted) image as [h, w, 3] float, shrunk cheaply (JPEG draft) to about `max_width`,
    with the file's full size (width, height). For colouring points, not for training."""
    path = Path(path)
    if not path.is_file():
        raise SceneError(f"{path}: image file is missing")
    try:
        img = Image.open(path)
        full = img.size
        if max_width is not None and img.width > max_width:
            img.draft("RGB", (max_width, max(1, round(img.height * max_width / img.width))))
        img.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise SceneError(f"{path}: cannot decode image ({type(e).__name__}: {e})") from e
    img = to_rgb(img)
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).float() / 255.0, full


def load_mask(path: Path, size: tuple[int, int]) -> Tensor:  # [H, W] bool
    """A binary mask (non-zero = True, > 127 for 8-bit) resized (nearest) to `size` = (H, W).

    The mask must have the aspect ratio of the requested size (1% tolerance), else SceneError.
    """
    path = Path(path)
    height, width = size
    img = _open_decoded(path, "mask")
    if abs(img.width * height - img.height * width) > 0.01 * img.width * height:
        raise SceneError(f"{path}: wrong mask size {img.width}x{img.height} for an image of {width}x{height}")
    img = to_8bit(img)
    if img.mode not in ("L", "1"):
        img = img.convert("L")
    img = _resize(img, width, height, nearest=True)
    return torch.from_numpy(np.asarray(img).copy() > 127 if img.mode == "L" else np.asarray(img).copy())


def load_frame_mask(frame: Frame, path: Path, scale: float = 1.0) -> Tensor:  # [H, W] bool
    """A mask drawn on the frame's raw image, in the frame's (undistorted, scaled) pixel grid."""
    cam = frame.camera.scaled(scale) if scale != 1.0 else frame.camera
    mask = load_mask(path, (cam.height, cam.width))
    if frame.distortion is not None and bool(torch.as_tensor(frame.distortion).abs().sum() > 0):
        warped = undistort_image(mask[..., None].float().expand(-1, -1, 3), cam.K, frame.distortion)
        mask = warped[..., 0] > 0.5
    return mask
