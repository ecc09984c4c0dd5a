"""GaussianModel <-> PLY in the INRIA 3DGS layout (what SuperSplat and the INRIA viewer read).

One `vertex` element, binary little endian, float32 properties in this order:
`x y z nx ny nz f_dc_0..2 f_rest_0..f_rest_{3(K-1)-1} opacity scale_0..2 rot_0..3`.
Normals are written as zeros; opacity is the logit, scales are logs, rot is wxyz (unnormalised
as stored). `f_rest` is channel-major: shN `[N, K-1, 3]` -> `[N, 3, K-1]` -> flattened, so all
R coefficients come first, then G, then B. The SH degree is read back from the f_rest count.

With a `SceneTransform` the file is written in world units (metres): a Gaussian of the scene
x_s = s R (x_w - c) has world mean R^T x_s / s + c, log-scales minus log(s), rotation
R^T Q, and SH coefficients rotated band by band (exact for degrees 0-3; see `sh_rotation`).

With an `origin` the world positions are written recentred, file = world - origin, and the origin
goes into the header's comments (`ply_frame`); `load_ply` adds it back, so what it returns is
always in world units.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from plyfile import PlyData, PlyElement
from torch import Tensor

from faithfusion.errors import UserError
from faithfusion.cameras import quat_multiply
from faithfusion.cameras import rotmat_to_quat
from faithfusion.gaussians.model import GaussianModel, num_sh_bases
from faithfusion.gaussians.ply_frame import PlyFrameError, frame_comments, parse_frame_comments

# INRIA / gsplat real SH basis constants (degrees 1-3); band 0 is rotation invariant.
_C1 = 0.4886025119029199
_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
_C3 = (
    -0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
    -0.4570457994644658, 1.445305721320277, -0.5900435899266435,
)
MAX_ROTATABLE_DEGREE = 3


class PlyFormatError(UserError, ValueError):
    """A PLY file that is not a readable 3DGS point cloud: the message names the file."""


class PlyMissingError(UserError, FileNotFoundError):
    """A PLY path that names no file."""


def ply_property_names(sh_degree: int) -> list[str]:
    """The INRIA property names, in file order, for SH degree `sh_degree`."""
    n_rest = 3 * (num_sh_bases(sh_degree) - 1)
    return (
        ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
        + [f"f_rest_{i}" for i in range(n_rest)]
        + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    )


# --- SH rotation ---------------------------------------------------------------------------


def sh_basis(dirs: Tensor, degree: int) -> Tensor:
    """The renderer's real SH basis (INRIA / gsplat sign convention) at unit `dirs [M, 3]` -> `[M, K]`."""
    if degree > MAX_ROTATABLE_DEGREE:
        raise NotImplementedError(f"sh_basis: degree {degree} > {MAX_ROTATABLE_DEGREE}")
    x, y, z = dirs.unbind(-1)
    cols = [torch.full_like(x, 0.28209479177387814)]
    if degree >= 1:
        cols += [-_C1 * y, _C1 * z, -_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        cols += [
            _C2[0] * x * y, _C2[1] * y * z, _C2[2] * (2 * zz - xx - yy), _C2[3] * x * z, _C2[4] * (xx - yy),
        ]
    if degree >= 3:
        cols += [
            _C3[0] * y * (3 * xx - yy), _C3[1] * x * y * z, _C3[2] * y * (4 * zz - xx - yy),
            _C3[3] * z * (2 * zz - 3 * xx - 3 * yy), _C3[4] * x * (4 * zz - xx - yy),
            _C3[5] * z * (xx - yy), _C3[6] * x * (xx - 3 * yy),
        ]
    return torch.stack(cols, dim=-1)


def _fibonacci_sphere(m: int) -> Tensor:  # [m, 3] float64, well spread unit vectors
    i = torch.arange(m, dtype=torch.float64) + 0.5
    z = 1 - 2 * i / m
    r = torch.sqrt(1 - z * z)
    phi = i * math.pi * (3 - math.sqrt(5))
    return torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], dim=-1)


def sh_rotation(R: Tensor, degree: int) -> Tensor:
    """Block-diagonal `[K, K]` A with Y(R d) = Y(d) A for every unit d (Y the basis row `sh_basis`).

    So a colour c(d) = Y(d) f_s seen in a frame where directions are `R d` becomes, in the frame of
    d, coefficients f = A f_s. Each band is solved exactly by least squares on 64 directions
    (band l spans a rotation-closed space, so the fit has zero residual).
    """
    R = R.detach().to(torch.float64).cpu()
    d = _fibonacci_sphere(64)  # [M, 3]
    Y = sh_basis(d, degree)  # [M, K]
    Yr = sh_basis(d @ R.T, degree)  # [M, K] = Y(R d)
    K = num_sh_bases(degree)
    A = torch.zeros(K, K, dtype=torch.float64)
    A[0, 0] = 1.0
    for band in range(1, degree + 1):
        s = slice(band * band, (band + 1) ** 2)
        A[s, s] = torch.linalg.lstsq(Y[:, s], Yr[:, s]).solution
    return A


def _is_identity(R: Tensor, tol: float = 1e-7) -> bool:
    return bool(torch.allclose(R.double(), torch.eye(3, dtype=torch.float64), atol=tol, rtol=0))


def transform_params(params: dict[str, Tensor], sh_degree: int, R: Tensor, center: Tensor, scale: float) -> dict[str, Tensor]:
    """Apply x' = R x / scale + center to a Gaussian set (covariances, orientations and SH colour follow).

    Scene -> world is (R = T.rotation^T, center = T.center, scale = T.scale);
    world -> scene is (R = T.rotation, center = -scale * T.rotation @ T.center, scale = 1 / T.scale).
    """
    R = R.to(torch.float64)
    if torch.linalg.det(R) <= 0 or not torch.allclose(R @ R.T, torch.eye(3, dtype=torch.float64), atol=1e-4):
        raise ValueError("PLY transform: the rotation must be a proper rotation (orthonormal, det +1)")
    if scale <= 0:
        raise ValueError(f"PLY transform: scale must be positive, got {scale}")
    out = {k: v.clone() for k, v in params.items()}
    means = params["means"].to(torch.float64)  # [N, 3]
    out["means"] = (means @ R.T / scale + center.to(torch.float64)).to(params["means"].dtype)
    out["scales"] = params["scales"] - math.log(scale)
    if not _is_identity(R):
        q = params["quats"].to(torch.float64)  # [N, 4]
        qr = rotmat_to_quat(R)  # [4] unit
        out["quats"] = quat_multiply(qr.expand_as(q), q).to(params["quats"].dtype)
        if sh_degree > 0:
            if sh_degree > MAX_ROTATABLE_DEGREE:
                raise NotImplementedError(
                    f"PLY transform: rotating SH of degree {sh_degree} is not implemented (max {MAX_ROTATABLE_DEGREE})"
                )
            # colour in the new frame at direction d' equals the old colour at R^T d'
            A = sh_rotation(R.T, sh_degree)[1:, 1:]  # [K-1, K-1]
            shN = params["shN"].to(torch.float64)  # [N, K-1, 3]
            out["shN"] = torch.einsum("ij,njc->nic", A, shN).to(params["shN"].dtype)
    return out


def _scene_to_world(transform) -> tuple[Tensor, Tensor, float]:
    return transform.rotation.double().T, transform.center.double(), float(transform.scale)


def _world_to_scene(transform) -> tuple[Tensor, Tensor, float]:
    R = transform.rotation.double()
    return R, -float(transform.scale) * (R @ transform.center.double()), 1.0 / float(transform.scale)


# --- save / load ---------------------------------------------------------------------------


def save_ply(
    model: GaussianModel, path: str | Path, transform=None, overwrite: bool = False, origin: tuple[float, float, float] | None = None
) -> Path:
    """Write `model` as an INRIA 3DGS PLY (atomically); `transform` (SceneTransform) -> world units.

    `origin` (world units): write positions as world - origin and record it in the header (None: global frame)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"save_ply: {path} already exists (pass overwrite=True to replace it)")
    n = len(model)
    if n == 0:
        raise ValueError(f"save_ply: the model has no Gaussians, nothing to write to {path}")
    params = {k: v.detach().cpu() for k, v in model.params.items()}
    comments = frame_comments(origin)  # checks the origin before anything is written
    if transform is not None or origin is not None:
        params["means"] = params["means"].double()  # [N, 3]: world positions far from 0 need float64 until recentred
    if transform is not None:
        params = transform_params(params, model.sh_degree, *_scene_to_world(transform))
    if origin is not None:
        params["means"] = params["means"] - torch.tensor(origin, dtype=torch.float64)
    k1 = num_sh_bases(model.sh_degree) - 1
    columns = [
        params["means"].reshape(n, 3),  # x y z
        torch.zeros(n, 3),  # nx ny nz
        params["sh0"].reshape(n, 3),  # f_dc_0..2 (one coefficient, so channel-major == RGB)
        params["shN"].reshape(n, k1, 3).transpose(1, 2).reshape(n, 3 * k1),  # [N, 3, K-1] flattened
        params["opacities"].reshape(n, 1),
        params["scales"].reshape(n, 3),
        params["quats"].reshape(n, 4),  # wxyz
    ]
    table = np.ascontiguousarray(torch.cat([c.float() for c in columns], dim=1).numpy(), dtype="<f4")  # [N, P]
    names = ply_property_names(model.sh_degree)
    assert table.shape[1] == len(names)
    vertices = table.view(np.dtype([(name, "<f4") for name in names]))[:, 0]  # [N] structured
    ply = PlyData([PlyElement.describe(vertices, "vertex")], text=False, byte_order="<", comments=comments)

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            ply.write(f)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # atomic and never clobbers a file written meanwhile
            except FileExistsError:
                raise FileExistsError(f"save_ply: {path} already exists (pass overwrite=True to replace it)") from None
            except OSError:  # no hard links on this file system
                if path.exists():
                    raise FileExistsError(f"save_ply: {path} already exists (pass overwrite=True to replace it)") from None
                os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _indexed(names: list[str], prefix: str) -> list[str]:
    """The names `prefix<int>`, sorted by their number."""
    return sorted((n for n in names if n.startswith(prefix) and n[len(prefix):].isdigit()), key=lambda n: int(n[len(prefix):]))


def read_ply_origin(path: str | Path) -> tuple[float, float, float] | None:
    """The local-frame origin recorded in a PLY's header (None: global frame or another tool's file)."""
    path = Path(path)
    if not path.is_file():
        raise PlyMissingError(f"read_ply_origin: {path} does not exist")
    comments = []
    with open(path, "rb") as f:  # the header only, not the vertex data
        for number, raw in enumerate(f):
            line = raw.decode("ascii", errors="replace").strip()
            if number == 0 and line != "ply":
                raise PlyFormatError(f"read_ply_origin: {path} is not a PLY file (no 'ply' magic line)")
            if line == "end_header":
                break
            if line.startswith("comment "):
                comments.append(line[len("comment "):])
        else:
            raise PlyFormatError(f"read_ply_origin: {path} has no 'end_header' line")
    return parse_frame_comments(comments, str(path))


def load_ply(path: str | Path, transform=None) -> GaussianModel:
    """Read an INRIA 3DGS PLY into a GaussianModel (CPU, float32), in world units; `transform` maps world -> scene.

    A file written in a local frame (header comment `faithfusion_origin X Y Z`) gets its origin added back."""
    path = Path(path)
    if not path.is_file():
        raise PlyMissingError(f"load_ply: {path} does not exist")
    if path.stat().st_size == 0:
        raise PlyFormatError(f"load_ply: {path} is empty")
    with open(path, "rb") as f:
        head = f.read(5)
    if not (head.startswith(b"ply\n") or head.startswith(b"ply\r\n")):
        raise PlyFormatError(f"load_ply: {path} is not a PLY file (no 'ply' magic line)")
    try:
        ply = PlyData.read(str(path))
    except Exception as e:  # plyfile raises several types for corrupt headers and truncated data
        raise PlyFormatError(f"load_ply: {path} could not be parsed as PLY: {e}") from e
    try:
        vertex = ply["vertex"]
    except KeyError:
        raise PlyFormatError(f"load_ply: {path} has no 'vertex' element") from None
    data = vertex.data
    n = len(data)
    if n == 0:
        raise PlyFormatError(f"load_ply: {path} holds no Gaussians (0 vertices)")
    names = list(data.dtype.names or ())

    rest = _indexed(names, "f_rest_")
    if [int(r[7:]) for r in rest] != list(range(len(rest))):
        raise PlyFormatError(f"load_ply: {path} has non-contiguous f_rest_* properties")
    if len(rest) % 3 != 0:
        raise PlyFormatError(f"load_ply: {path} has {len(rest)} f_rest_* properties, not a multiple of 3")
    k1 = len(rest) // 3
    degree = round(math.sqrt(k1 + 1)) - 1
    if num_sh_bases(degree) - 1 != k1:
        raise PlyFormatError(f"load_ply: {path} has {len(rest)} f_rest_* properties: no SH degree has {k1 + 1} bases")
    required = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity"] + [f"scale_{i}" for i in range(3)] + [
        f"rot_{i}" for i in range(4)
    ]
    missing = [r for r in required if r not in names]
    if missing:
        raise PlyFormatError(f"load_ply: {path} lacks the 3DGS properties {missing} (a plain point cloud?)")

    def cols(keys: list[str]) -> Tensor:  # [N, len(keys)] float32
        return torch.from_numpy(np.stack([np.asarray(data[k], dtype=np.float32) for k in keys], axis=1))

    params = {
        "means": cols(["x", "y", "z"]),
        "scales": cols([f"scale_{i}" for i in range(3)]),
        "quats": cols([f"rot_{i}" for i in range(4)]),
        "opacities": cols(["opacity"])[:, 0],
        "sh0": cols(["f_dc_0", "f_dc_1", "f_dc_2"])[:, None, :],  # [N, 1, 3]
        "shN": cols(rest).reshape(n, 3, k1).transpose(1, 2).contiguous() if k1 else torch.zeros(n, 0, 3),  # [N, K-1, 3]
    }
    for key, value in params.items():
        bad = ~torch.isfinite(value.reshape(n, -1)).all(dim=1)  # [N]
        if bool(bad.any()):
            first = int(bad.nonzero()[0, 0])
            raise PlyFormatError(f"load_ply: {path} has NaN or infinite {key} in {int(bad.sum())} Gaussians (first: vertex {first})")
    zero_quat = params["quats"].norm(dim=1) == 0  # [N]
    if bool(zero_quat.any()):
        raise PlyFormatError(f"load_ply: {path} has a zero rotation quaternion in {int(zero_quat.sum())} Gaussians (first: vertex {int(zero_quat.nonzero()[0, 0])})")
    try:
        origin = parse_frame_comments(ply.comments, f"load_ply: {path}")
    except PlyFrameError as e:
        raise PlyFormatError(str(e)) from None
    if origin is not None:
        params["means"] = params["means"].double() + torch.tensor(origin, dtype=torch.float64)  # [N, 3] world
    if transform is not None:
        params = transform_params(params, degree, *_world_to_scene(transform))
    params["means"] = params["means"].float()
    return GaussianModel(params, sh_degree=degree)

