"""The diagonal Fisher information of the Gaussians over a set of views, exact per pixel.

    H_theta = sum_views sum_pixels omega_p sum_channels (d c_pk / d theta)^2

for every stored scalar theta of the groups means [N,3], scales (log) [N,3], quats [N,4], opacities
(logit) [N], sh0 [N,1,3], shN [N,K-1,3]; omega_p a per-pixel weight (1 for captured views).

How, per view. A pixel's colour depends on Gaussian n only through n's per-view quantities
u = (mean2d x, y; conic a, b, c; opacity; colour r, g, b), and u depends on theta through a Jacobian
J_n = du/dtheta that is the same for all of n's pixels (`jacobian.py`). So with g_pk = d c_pk / d u_n

    H_theta = sum_views J_n[:, theta]^T M_n J_n[:, theta],   M_n = sum_pixels omega_p sum_k g_pk g_pk^T  (9x9).

g_pk has the closed form of the compositing recurrence (`blend.py`): with s = dalpha/dsigma, w = alpha T,
D_k = dc_k/dalpha and phi = dsigma/d(mean2d, conic) extended by -1/o for the opacity
(dalpha/do = alpha/o = s * (-1/o)): g_pk = (D_k s phi, w e_k). Hence M has three blocks

    geo   = sum_p omega s^2 (sum_k D_k^2) phi phi^T     (6x6)
    cross = sum_p omega s w D_k phi                    (6x3)
    col   = sum_p omega w^2 I_3                        (3x3)

phi is a quadratic polynomial in (dx, dy) = pixel - mean2d, so every block is a fixed linear map of the
moments sum_p W dx^i dy^j (i, j <= 4) of a per-pair weight W. Those moments are one matrix product per
chunk in block-centred coordinates, moved to the Gaussian's centre by the binomial shift, and summed
per Gaussian; phi is applied once per Gaussian at the end. No per-pixel gradient is ever materialised.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil, comb
from typing import Iterable, Sequence

import torch
from torch import Tensor

from faithfusion.cameras import Camera
from faithfusion.eig.blend import PairBlend, blend_pairs, blended_pairs, colour_alpha_grad, monomials
from faithfusion.eig.jacobian import GEO_ROWS, ViewQuantities, compiled_fn, view_quantities
from faithfusion.eig.kernel_config import default_config
from faithfusion.gaussians.model import GaussianModel
from faithfusion.render.raster import (
    BlockGrid, BlockLists, Chunk, TileLists, chunk_lists, pixel_quadratics, plan_chunks, tile_lists,
)

PARAM_GROUPS: tuple[str, ...] = ("means", "scales", "quats", "opacities", "sh0", "shN")
BLOCK = 8

# the monomials (1, dx, dy, dx^2, dx dy, dy^2) that phi is made of, as exponent pairs
_EXPS = ((0, 0), (1, 0), (0, 1), (2, 0), (1, 1), (0, 2))
_N_MOM = 25  # 5x5 moments (degree <= 4 in x and in y) for the geo block
_N_MOM2 = 9  # 3x3 moments (degree <= 2) for the cross block
_PACK = _N_MOM + 3 * _N_MOM2 + 1


def default_max_pairs(device: torch.device) -> int:
    """Pairs per chunk: ~15 float tensors of this many entries are alive at once (~0.5 GB at 2^23)."""
    return 1 << 23 if device.type == "cuda" else 1 << 18


def check_groups(groups: Iterable[str]) -> tuple[str, ...]:
    groups = tuple(groups)
    bad = [g for g in groups if g not in PARAM_GROUPS]
    if bad or not groups:
        raise ValueError(f"unknown parameter groups {bad}: choose from {PARAM_GROUPS}")
    return groups


@dataclass
class ViewPass:
    """One camera prepared for the pair loops: projection (+ Jacobian) and the chunks of blended pairs."""

    camera: Camera
    vq: ViewQuantities
    grid: BlockGrid
    chunks: list[Chunk]
    sh_degree: int
    tiles: TileLists | None = None  # tile lists at the Triton kernels' tile size (they walk them)

    @property
    def n_gaussians(self) -> int:
        return self.vq.opacities.shape[0]


def prepare_view(
    model: GaussianModel,
    camera: Camera,
    *,
    sh_degree: int | None = None,
    jacobian: bool = True,
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    block: int = BLOCK,
    max_pairs: int | None = None,
    trim: bool = True,
    plan: bool = True,
) -> ViewPass:
    """Projection (+ Jacobian), block lists and chunks of one camera; `trim` cuts each block's list after
    its last Gaussian that any pixel of the block blends (exact: the rest have alpha 0 everywhere there).
    `plan=False` skips the block lists and chunks (the Triton kernels need only the tile lists, cut to
    `kernel_config.default_config().tile`)."""
    degree = model.sh_degree if sh_degree is None else min(sh_degree, model.sh_degree)
    params = {k: v.detach() for k, v in model.params.items()}
    cam = camera.to(model.device)
    with torch.no_grad():
        viewmat, K = cam.viewmat.to(params["means"].dtype), cam.K.to(params["means"].dtype)
        vq = view_quantities(params, degree, viewmat, K, cam.width, cam.height, eps2d, near_plane, far_plane, jacobian)
        if not plan:
            tl = tile_lists(vq.proj, cam.width, cam.height, tile_size=default_config().tile)
            grid = BlockGrid(block, ceil(cam.width / block), ceil(cam.height / block), cam.width, cam.height)
            return ViewPass(cam, vq, grid, [], degree, tl)
        tl = tile_lists(vq.proj, cam.width, cam.height)
        max_pairs = max_pairs or default_max_pairs(model.device)
        lists, chunks = plan_chunks(tl, vq.proj.means2d, vq.proj.radii, cam.width, cam.height, block, max_pairs)
        if trim and chunks:
            chunks = chunk_lists(lists, max_pairs, live_counts(vq, lists, chunks), vq.proj.means2d.dtype)
    return ViewPass(cam, vq, lists.grid, chunks, degree, tl)


def live_counts(vq: ViewQuantities, lists: BlockLists, chunks: list[Chunk]) -> Tensor:
    """Per list `[L]`: 1 + the last slot that blends (alpha > 0 after the stop) at any pixel of its block."""
    means2d, conics = vq.proj.means2d[0], vq.proj.conics[0]
    quad = pixel_quadratics(lists.grid.size, means2d.dtype, means2d.device)
    live = torch.zeros_like(lists.counts)
    for ch in chunks:
        used = blended_pairs(quad, means2d[ch.ids] - ch.centres[:, None, :], conics[ch.ids],
                             vq.opacities[ch.ids] * ch.valid).any(1)  # [B, K]
        slot = torch.arange(1, used.shape[1] + 1, device=used.device)
        live[ch.lists] = (used * slot).amax(1)
    return live


def pixel_weight_blocks(grid: BlockGrid, weights: Tensor | None, like: Tensor) -> Tensor:
    """Per-pixel weights `[H, W]` (None = 1) in block layout `[n_blocks, P]`, 0 on the padding."""
    if weights is None:
        weights = like.new_ones(grid.height, grid.width)
    return grid.to_blocks(weights.to(like)[..., None])[..., 0]


def background_blocks(grid: BlockGrid, background: Tensor | None, like: Tensor) -> Tensor | None:
    """Background `[3]` or `[H, W, 3]` (None = black) in block layout `[n_blocks, P, 3]`."""
    if background is None:
        return None
    bg = background.to(like)
    if bg.dim() == 1:
        bg = bg.expand(grid.height, grid.width, bg.shape[0])
    return grid.to_blocks(bg)


_BINOM: dict = {}


def _binomials(n: int, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    """C(i, a) `[n, n]` (0 for a > i) and i - a clamped at 0 `[n, n]`, built once per device (no copy per chunk)."""
    key = (n, dtype, device)
    if key not in _BINOM:
        e = torch.arange(n)
        _BINOM[key] = (
            torch.tensor([[comb(i, a) if a <= i else 0 for a in range(n)] for i in range(n)], dtype=dtype).to(device),
            (e[:, None] - e[None, :]).clamp_min(0).to(device),  # [n, n] i - a
        )
    return _BINOM[key]


def _shift_powers(mc: Tensor, n: int) -> Tensor:
    """(-mc)^e for e < n `[..., n]` (a cumulative product, as `_shift` builds them)."""
    return torch.cat([torch.ones_like(mc)[..., None], (-mc)[..., None].expand(*mc.shape, n - 1)], -1).cumprod(-1)


def _shift(mc: Tensor, n: int) -> Tensor:
    """A[i, a] = C(i, a) (-mc)^(i - a) for a <= i < n: moments about 0 -> moments about mc `[..., n, n]`."""
    binom, diff = _binomials(n, mc.dtype, mc.device)
    return _shift_powers(mc, n)[..., diff] * binom  # [..., n, n]


def shifted_moments(mu: Tensor, px: Tensor, py: Tensor) -> Tensor:
    """Ax mu Ay^T `[n, n, *batch]` for moments `mu [n, n, *batch]` (batch last), with A[i, a] = C(i, a) p[i - a]
    the binomial shift (`_shift`) of the powers `px`, `py [>= n, *batch]` (`_shift_powers`, moved to the front).

    Values equal to `_shift(mx) @ mu @ _shift(my)^T` in the [*batch, n, n] layout: torch's CPU bmm computes
    matrices this small (< 400 multiply-adds) as acc = 0, acc += a_ik b_kj in k order, in float, and so does
    this, term by term (only the terms with a zero factor of A's upper triangle are skipped, which can
    change no value but the sign of a zero). With the batch as the last, contiguous axis every step is one
    vectorised elementwise pass instead of a small matrix product per (block, slot)."""
    n = mu.shape[0]
    binom, _ = _binomials(n, mu.dtype, mu.device)
    tail = (None,) * (mu.dim() - 2)
    t = None  # t[i, b] = sum_a Ax[i, a] mu[a, b]
    for a in range(n):
        col = px[: n - a] * binom[a:, a][(...,) + tail]  # [n - a, *batch] Ax[a:, a]
        term = col[:, None] * mu[None, a]  # [n - a, n, *batch]
        if t is None:
            t = term
        else:
            t[a:] += term
    out = None  # out[i, j] = sum_b t[i, b] Ay[j, b]
    for b in range(n):
        col = py[: n - b] * binom[b:, b][(...,) + tail]  # [n - b, *batch] Ay[b:, b]
        term = t[:, None, b] * col[None]  # [n, n - b, *batch]
        if out is None:
            out = term
        else:
            out[:, b:] += term
    return out


@dataclass
class PairSums:
    """Per visible Gaussian, one view: the 9x9 M = sum_pairs sum_k g_k g_k^T in its three blocks (M = 0 for the rest)."""

    index: Tensor  # [V] the visible Gaussians the rows refer to
    geo: Tensor  # [V, 6, 6] (mean2d, conic, opacity) x same
    cross: Tensor  # [V, 6, 3] geo x colour
    w2: Tensor  # [V] colour block = w2 * I_3


def chunk_moments(
    quad: Tensor,  # [P, 6] (1, x, y, x^2, xy, y^2) of the block's pixel offsets
    mono5: Tensor,  # [P, 25] x^a y^b, a, b <= 4
    mono3: Tensor,  # [P, 9] x^a y^b, a, b <= 2
    m: Tensor,  # [B, K, 2] block-centred means
    conic: Tensor,  # [B, K, 3]
    o: Tensor,  # [B, K] opacity, 0 on padding
    f: Tensor,  # [B, K, 3] colour
    om: Tensor,  # [B, P, 1] pixel weight (0 outside the image)
    bgc: Tensor | None,  # [B, P, 3] background
    always_stop: bool = False,
    blend: PairBlend | None = None,  # blend_pairs(quad, m, conic, o, always_stop), when the caller has it
) -> Tensor:
    """One chunk's per-slot moments `[B, K, 53]`: sum_p W dx^i dy^j for W = omega s^2 sum_k D_k^2 (i, j <= 4),
    for W = omega s w D_k (i, j <= 2, each channel), and sum_p omega w^2 -- about the Gaussian's own centre."""
    B, K = m.shape[:2]
    bl = blend_pairs(quad, m, conic, o, always_stop) if blend is None else blend
    q = torch.zeros_like(bl.alpha)
    W2 = bl.alpha.new_empty(B, 3, *bl.alpha.shape[1:])  # [B, 3, P, K]
    for k in range(3):
        D = colour_alpha_grad(bl, f[..., k], None if bgc is None else bgc[..., k])  # [B, P, K]
        q.addcmul_(D, D)
        torch.mul(D, bl.weight, out=W2[:, k])
    sw = bl.slope * om  # [B, P, K] omega s
    W1 = q.mul_(sw).mul_(bl.slope)  # omega s^2 sum_k D_k^2
    W2.mul_(sw[:, None])  # [B, 3, P, K] omega s w D_k
    W3 = (bl.weight * bl.weight * om).sum(1)  # [B, K]
    mu1 = torch.matmul(W1.transpose(1, 2), mono5)  # [B, K, 25]
    mu2 = torch.matmul(W2.transpose(-1, -2), mono3)  # [B, 3, K, 9]
    nu = centre_moments(mu1, mu2, m, batch_last=not mu1.is_cuda)  # [B, K, 52]
    return torch.cat([nu, W3[..., None]], -1)


def centre_moments(mu1: Tensor, mu2: Tensor, m: Tensor, batch_last: bool) -> Tensor:
    """Block-centred moments `mu1 [B, K, 25]`, `mu2 [B, 3, K, 9]` moved to each Gaussian's centre `m [B, K, 2]`
    -> `[B, K, 25 + 27]`: Ax mu Ay^T with the binomial shifts of `_shift`. `batch_last` (the CPU path) computes
    the same values by `shifted_moments` with the (block, slot) batch as the last axis, 2x faster on the CPU
    than torch's small batched matrix products (which the GPU path keeps: one kernel each)."""
    B, K = m.shape[:2]
    if not batch_last:
        Ax, Ay = _shift(m[..., 0], 5), _shift(m[..., 1], 5)  # [B, K, 5, 5]
        nu1 = Ax @ mu1.view(B, K, 5, 5) @ Ay.transpose(-1, -2)  # [B, K, 5, 5] sum W dx^i dy^j
        nu2 = Ax[:, None, :, :3, :3] @ mu2.view(B, 3, K, 3, 3) @ Ay[:, None, :, :3, :3].transpose(-1, -2)  # [B, 3, K, 3, 3]
        return torch.cat([nu1.reshape(B, K, -1), nu2.permute(0, 2, 1, 3, 4).reshape(B, K, -1)], -1)
    px = _shift_powers(m[..., 0], 5).movedim(-1, 0).contiguous()  # [5, B, K]
    py = _shift_powers(m[..., 1], 5).movedim(-1, 0).contiguous()
    nu1 = shifted_moments(mu1.permute(2, 0, 1).reshape(5, 5, B, K), px, py)  # [5, 5, B, K]
    nu2 = shifted_moments(mu2.permute(3, 0, 1, 2).reshape(3, 3, B, 3, K), px[:, :, None], py[:, :, None])  # [3, 3, B, 3, K]
    return torch.cat([nu1.permute(2, 3, 0, 1).reshape(B, K, -1), nu2.permute(2, 4, 3, 0, 1).reshape(B, K, -1)], -1)


def _chunk_fn(compiled: bool):
    """`chunk_moments`, or its torch.compile'd form (fuses the elementwise passes; shapes vary: dynamic)."""
    return compiled_fn("chunk_moments", chunk_moments, compiled)


BACKENDS = ("auto", "torch", "triton")


def resolve_backend(backend: str, device: torch.device) -> str:
    """'auto' -> 'triton' on CUDA where triton is installed (the kernels of `triton_pairs.py` and
    `triton_composite.py`, held to the torch path by tests/test_eig_triton.py -m gpu), else 'torch';
    FAITHFUSION_EIG_BACKEND=torch|triton overrides 'auto' on CUDA. 'triton' on the CPU needs TRITON_INTERPRET=1
    (Triton's interpreter: tests)."""
    import importlib.util
    import os

    if backend == "auto" and device.type == "cuda" and os.environ.get("FAITHFUSION_EIG_BACKEND", "auto") != "auto":
        backend = os.environ["FAITHFUSION_EIG_BACKEND"]
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: choose from {BACKENDS}")
    if backend == "auto":
        return "triton" if device.type == "cuda" and importlib.util.find_spec("triton") is not None else "torch"
    if backend == "triton" and device.type != "cuda":
        if os.environ.get("TRITON_INTERPRET") != "1":
            raise RuntimeError("backend='triton' on the CPU needs TRITON_INTERPRET=1 (set before importing triton)")
    return backend


def _pair_sums_triton(vp: ViewPass, pixel_weights: Tensor | None, background: Tensor | None) -> PairSums:
    """`pair_sums` by the Triton kernel of `triton_pairs.py` over the view's tile lists."""
    from faithfusion.eig.triton_pairs import pair_sums_raw, unpack

    vq, cam = vp.vq, vp.camera
    tiles = vp.tiles if vp.tiles is not None else tile_lists(vq.proj, cam.width, cam.height)
    with torch.no_grad():
        out = pair_sums_raw(vq.proj.means2d[0], vq.proj.conics[0], vq.opacities, vq.colors, tiles,
                            cam.width, cam.height, pixel_weights, background)
        vis = vq.proj.visible[0].nonzero().squeeze(-1)
        return PairSums(vis, *unpack(out[vis]))


@dataclass
class ChunkBlend:
    """What compositing a chunk needs of its blend (`maps.composite_scalar`), kept from the Fisher pass."""

    weight: Tensor  # [B, P, K] alpha T
    count: Tensor  # [B, P] Gaussians blended per pixel
    T_final: Tensor  # [B, P]


def pair_sums(
    vp: ViewPass, pixel_weights: Tensor | None = None, background: Tensor | None = None, compiled: bool = False,
    backend: str = "auto", keep_blends: list[ChunkBlend] | None = None,
) -> PairSums:
    """Accumulate M for every Gaussian over the view's blended pairs (chunk by chunk; or, `backend`
    'triton' / 'auto' on CUDA, in one Triton kernel over the tile lists: `compiled` is then ignored).
    `keep_blends` (torch backend, not compiled): a list that receives each chunk's `ChunkBlend`, so that an EIG
    map composites over the same blend instead of blending every chunk again (~20 MB a view at the quick size)."""
    if resolve_backend(backend, vp.vq.proj.means2d.device) == "triton":
        return _pair_sums_triton(vp, pixel_weights, background)
    vq, grid = vp.vq, vp.grid
    means2d, conics = vq.proj.means2d[0], vq.proj.conics[0]  # [N, 2], [N, 3]
    like = means2d
    N = means2d.shape[0]
    omega = pixel_weight_blocks(grid, pixel_weights, like)  # [n_blocks, P]
    bg = background_blocks(grid, background, like)  # [n_blocks, P, 3] | None
    xy = grid.pixel_offsets(like.dtype, like.device)  # [P, 2]
    quad = pixel_quadratics(grid.size, like.dtype, like.device)  # [P, 6]
    mono5, mono3 = monomials(xy, 4), monomials(xy, 2)  # [P, 25], [P, 9]
    acc = like.new_zeros(N, _PACK)
    fn = _chunk_fn(compiled)
    keep = keep_blends is not None and not compiled
    with torch.no_grad():
        for ch in vp.chunks:
            m = means2d[ch.ids] - ch.centres[:, None, :]  # [B, K, 2]
            o = vq.opacities[ch.ids] * ch.valid  # [B, K]
            bl = None
            if keep:
                bl = blend_pairs(quad, m, conics[ch.ids], o)
                keep_blends.append(ChunkBlend(bl.weight, (bl.alpha > 0).sum(-1), bl.T_final))
            packed = fn(
                quad, mono5, mono3, m,
                conics[ch.ids],
                o,
                vq.colors[ch.ids],
                omega[ch.blocks][..., None],
                bg[ch.blocks] if bg is not None else None,
                compiled,
                bl,
            )
            acc.index_add_(0, ch.ids.reshape(-1), (packed * ch.valid[..., None]).reshape(-1, _PACK))
    vis = vq.proj.visible[0].nonzero().squeeze(-1)  # [V] only they have pairs
    return _apply_phi(vis, acc[vis], conics[vis], vq.opacities[vis])


def _apply_phi(index: Tensor, acc: Tensor, conics: Tensor, opac: Tensor) -> PairSums:
    """Moments per Gaussian `[V, 53]` -> the blocks of M, with phi = dsigma/d(mean2d, conic) and -1/o."""
    N = acc.shape[0]
    nu1 = acc[:, :_N_MOM]  # [N, 25]
    nu2 = acc[:, _N_MOM : _N_MOM + 3 * _N_MOM2].reshape(N, 3, _N_MOM2)  # [N, 3, 9]
    w2 = acc[:, -1]
    gram_idx = torch.tensor([[(eu[0] + ev[0]) * 5 + eu[1] + ev[1] for ev in _EXPS] for eu in _EXPS], device=acc.device)
    lin_idx = torch.tensor([e[0] * 3 + e[1] for e in _EXPS], device=acc.device)
    gram = nu1[:, gram_idx]  # [N, 6, 6] sum W mono_u mono_v
    lin = nu2[:, :, lin_idx]  # [N, 3, 6] sum W_k mono_u
    a, b, c = conics.unbind(-1)
    phi = acc.new_zeros(N, 6, 6)  # rows: d sigma / d (mx, my, a, b, c), then -1/o; columns: monomials
    phi[:, 0, 1], phi[:, 0, 2] = -a, -b
    phi[:, 1, 1], phi[:, 1, 2] = -b, -c
    phi[:, 2, 3], phi[:, 3, 4], phi[:, 4, 5] = 0.5, 1.0, 0.5
    phi[:, 5, 0] = -1.0 / opac.clamp_min(1e-12)
    geo = phi @ gram @ phi.transpose(1, 2)
    cross = phi @ lin.transpose(1, 2)  # [N, 6, 3]
    return PairSums(index, geo, cross, w2)


def jmj_diagonal(J: Tensor, geo: Tensor, cross: Tensor, w2: Tensor) -> Tensor:
    """diag(J^T M J) `[V, 11]` from J `[V, 11, 9]` and M's blocks geo `[V, 6, 6]`, cross `[V, 6, 3]`, w2 `[V]`
    (M's colour block is w2 times the identity); products and sums only, so that it compiles to one pass."""
    Jg, Jc = J[..., :6], J[..., 6:]  # [V, 11, 6], [V, 11, 3]
    h = (Jg[..., :, None] * geo[:, None] * Jg[..., None, :]).sum((-1, -2))  # J_g^T geo J_g
    h = h + 2.0 * (Jg[..., :, None] * cross[:, None] * Jc[..., None, :]).sum((-1, -2))
    return h + w2[:, None] * (Jc * Jc).sum(-1)


def fisher_from_sums(vp: ViewPass, sums: PairSums, groups: Sequence[str], n_sh: int) -> dict[str, Tensor]:
    """diag(J^T M J) per group, shaped like the parameters; `n_sh` = (model degree + 1)^2."""
    out: dict[str, Tensor] = {}
    vq, idx = vp.vq, sums.index
    N = vq.opacities.shape[0]
    if any(g in GEO_ROWS for g in groups):
        h_vis = compiled_fn("jmj_diagonal", jmj_diagonal, vq.J.is_cuda)(vq.J[idx], sums.geo, sums.cross, sums.w2)
        h = h_vis.new_zeros(N, h_vis.shape[1])
        h[idx] = h_vis
        for g in groups:
            if g in GEO_ROWS:
                out[g] = h[:, GEO_ROWS[g]] if g != "opacities" else h[:, 10]
    if "sh0" in groups or "shN" in groups:
        Y2 = vq.sh_bases[idx] ** 2  # [V, n_active]
        full = Y2.new_zeros(N, n_sh, 3)
        full[idx, : Y2.shape[1]] = Y2[..., None] * vq.colour_live[idx][:, None, :] * sums.w2[:, None, None]
        if "sh0" in groups:
            out["sh0"] = full[:, :1]
        if "shN" in groups:
            out["shN"] = full[:, 1:]
    return {g: out[g] for g in groups}


def view_fisher(
    model: GaussianModel,
    camera: Camera,
    *,
    groups: Sequence[str] = PARAM_GROUPS,
    pixel_weights: Tensor | None = None,  # [H, W]
    background: Tensor | None = None,  # [3] or [H, W, 3]
    sh_degree: int | None = None,
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    max_pairs: int | None = None,
    vp: ViewPass | None = None,
    compiled: bool = False,
    backend: str = "auto",
    keep_blends: list | None = None,
) -> dict[str, Tensor]:
    """The Fisher diagonal of one view, per group (shapes as the model's parameters); `compiled` runs the
    per-chunk pair loop through torch.compile (GPU: fused Triton kernels; first call compiles). `backend`:
    'torch' the chunked pair loop, 'triton' the kernel of `triton_pairs.py`, 'auto' Triton on CUDA."""
    groups = check_groups(groups)
    needs_J = any(g in GEO_ROWS for g in groups)
    backend = resolve_backend(backend, model.device)
    if vp is None or (needs_J and vp.vq.J is None) or (backend == "torch" and not vp.chunks and vp.tiles is not None):
        vp = prepare_view(model, camera, sh_degree=sh_degree, jacobian=needs_J, eps2d=eps2d,
                          near_plane=near_plane, far_plane=far_plane, max_pairs=max_pairs, plan=backend == "torch")
    sums = pair_sums(vp, pixel_weights, background, compiled, backend, keep_blends)
    return fisher_from_sums(vp, sums, groups, model.params["shN"].shape[1] + 1)


def fisher_diagonal(
    model: GaussianModel,
    cameras: Sequence[Camera],
    *,
    groups: Sequence[str] = PARAM_GROUPS,
    pixel_weights: Sequence[Tensor | None] | None = None,
    backgrounds: Sequence[Tensor | None] | None = None,
    **kw,
) -> dict[str, Tensor]:
    """H summed over `cameras` (each with an optional `[H, W]` weight and background)."""
    total: dict[str, Tensor] = {}
    for i, cam in enumerate(cameras):
        h = view_fisher(
            model, cam, groups=groups,
            pixel_weights=None if pixel_weights is None else pixel_weights[i],
            background=None if backgrounds is None else backgrounds[i], **kw,
        )
        for g, v in h.items():
            total[g] = total[g] + v if g in total else v
    return total
