"""H_train that grows with the views a fusion run adds, and follows the model's Gaussians.

    acc = train_accumulator(trainer)                            # session.py: the captured views, sky weighted 0
    ... round r of the fusion schedule:
    acc.recompute()                                             # the model trained (and densified) since:
                                                                #   H is re-evaluated at the current parameters
    m = eig_map(model, novel_camera, acc.H)                     # what a novel view would add
    ... the fixer repairs the novel view; its loss weight is `cal.weight(g)`:
    acc.add_view(novel_camera, pixel_weights=cal.weight(g))     # a repaired pseudo-view counts as training
                                                                #   information, weighted per pixel

How the fusion rounds should use it. The Fisher is evaluated at the current parameters, and the model
moves between rounds (every 2000 steps in FaithFusion), so H_train is recomputed once per round from the
remembered views (`recompute`, one Fisher pass per view, about the cost of one training pass over
them); views added within a round are accumulated on top (`add_view`, weighted Fisher
sum_p omega_p (dc_p/dtheta)^2 for pseudo-views, omega = the per-pixel loss weight times the pool's loss
weight). Views are never removed. When densification changes the Gaussians between two uses and the
caller knows where each new Gaussian came from, `remap(new_to_old)` carries H over without recomputing
(a new Gaussian without a parent gets H = 0: unobserved, maximal EIG); `sync(model)` recomputes when
the Gaussian count changed.

A view that is both mapped and added within one round (a fused view: its EIG map, then its weighted
Fisher) is projected and planned once: `prepare(camera)` gives a `PreparedView` (projection, Jacobian,
pair chunks, background) that `EigSession.eig` and `add_view` both take, valid while the parameters stay.

On a scene graph (`frames`, faithfusion/scene_graph/fisher.py) each camera is prepared on the Gaussian set of its
timestep (`frames.model_for`) and its Fisher is carried back to the stored node-local parameters
(`frames.to_local`) before it is added, so H lives in the model's own frame and sums over timesteps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import torch
from torch import Tensor

from faithfusion.cameras import Camera
from faithfusion.eig.fisher import PARAM_GROUPS, ViewPass, check_groups, prepare_view, resolve_backend, view_fisher
from faithfusion.eig.jacobian import GEO_ROWS
from faithfusion.gaussians.model import GaussianModel

BackgroundFn = Callable[[Camera], Tensor]  # camera -> [H, W, 3] or [3]


class ViewFrames(Protocol):
    """What a camera sees when the stored Gaussians are not the world-frame set (a scene graph's nodes)."""

    def model_for(self, model: GaussianModel, camera: Camera) -> GaussianModel: ...

    def to_local(self, model: GaussianModel, camera: Camera, H: dict[str, Tensor]) -> dict[str, Tensor]: ...

    def to_world(self, model: GaussianModel, camera: Camera, H: dict[str, Tensor]) -> dict[str, Tensor]: ...


@dataclass
class FisherView:
    """A view H_train was accumulated over."""

    camera: Camera
    pixel_weights: Tensor | None = None  # [H, W], on the CPU
    name: str = ""


@dataclass
class PreparedView:
    """A camera made ready for the pair loops at the model's current parameters: its `ViewPass` (projection,
    Jacobian, pair chunks) and its background. Shared by the view's EIG map and its Fisher; stale once the
    parameters move."""

    vp: ViewPass
    background: Tensor | None  # [H, W, 3] or [3]

    @property
    def camera(self) -> Camera:
        return self.vp.camera


class FisherAccumulator:
    """The diagonal Fisher over a growing set of views, aligned with `model`'s Gaussians."""

    def __init__(
        self,
        model: GaussianModel,
        groups: Sequence[str] = PARAM_GROUPS,
        background_fn: BackgroundFn | None = None,
        keep_views: bool = True,
        frames: ViewFrames | None = None,
        **fisher_kw,
    ) -> None:
        self.model = model
        self.frames = frames  # None: the model is the world-frame set every camera sees
        self.groups = check_groups(groups)
        self.background_fn = background_fn
        self.keep_views = keep_views
        self.fisher_kw = fisher_kw  # sh_degree, eps2d, near_plane, far_plane, max_pairs
        self.views: list[FisherView] = []
        self.n_added = 0
        self.keep_prepared: set[str] = set()  # names of views whose preparation `add_view` keeps for `take_prepared`
        self._prepared: dict[str, tuple[PreparedView, tuple]] = {}
        self.H: dict[str, Tensor] = self._zeros()

    def _zeros(self) -> dict[str, Tensor]:
        return {g: torch.zeros_like(self.model.params[g].detach()) for g in self.groups}

    def __len__(self) -> int:
        return len(self.model)

    # --- adding views -----------------------------------------------------------------------

    def model_for(self, camera: Camera) -> GaussianModel:
        """The Gaussian set `camera` sees: the model, or on a scene graph the set composed at its timestep."""
        return self.model if self.frames is None else self.frames.model_for(self.model, camera)

    def to_local(self, camera: Camera, H: dict[str, Tensor]) -> dict[str, Tensor]:
        """A Fisher of `model_for(camera)` as one of the stored parameters (the identity without frames)."""
        return H if self.frames is None else self.frames.to_local(self.model, camera, H)

    def prepare(self, camera: Camera) -> PreparedView:
        """`camera` projected and planned as `view_fisher` would do it (same settings), with its background."""
        kw = {k: v for k, v in self.fisher_kw.items() if k in ("sh_degree", "eps2d", "near_plane", "far_plane", "max_pairs")}
        backend = resolve_backend(self.fisher_kw.get("backend", "auto"), self.model.device)
        vp = prepare_view(self.model_for(camera), camera, jacobian=any(g in GEO_ROWS for g in self.groups),
                          plan=backend == "torch", **kw)
        bg = self.background_fn(camera) if self.background_fn is not None else None
        return PreparedView(vp, bg)

    def view_fisher(self, camera: Camera, pixel_weights: Tensor | None = None,
                    prepared: PreparedView | None = None) -> dict[str, Tensor]:
        """One view's Fisher at the model's current parameters (not added), in the stored parameters' frame;
        `prepared` = `prepare(camera)`."""
        if prepared is None:
            bg = self.background_fn(camera) if self.background_fn is not None else None
        else:
            bg = prepared.background
        pw = None if pixel_weights is None else pixel_weights.to(self.model.device)
        h = view_fisher(self.model_for(camera), camera, groups=self.groups, pixel_weights=pw, background=bg,
                        vp=None if prepared is None else prepared.vp, **self.fisher_kw)
        return self.to_local(camera, h)

    def add_view(self, camera: Camera, pixel_weights: Tensor | None = None, name: str = "",
                 prepared: PreparedView | None = None) -> None:
        """H += the view's (optionally per-pixel weighted) Fisher; `prepared` = `prepare(camera)` at the current
        parameters, when the caller has it already."""
        self._check_aligned()
        if prepared is None and name in self.keep_prepared:
            prepared = self.prepare(camera)
            self._prepared[name] = (prepared, self._param_stamp())
        for g, h in self.view_fisher(camera, pixel_weights, prepared).items():
            self.H[g] += h
        self.n_added += 1
        if self.keep_views:
            pw = None if pixel_weights is None else pixel_weights.detach().cpu()
            self.views.append(FisherView(camera.to("cpu"), pw, name))

    def _param_stamp(self) -> tuple:
        """The model's parameter tensors and their in-place versions: a preparation is valid while they stay."""
        return tuple((t, t._version) for t in self.model.params.values())

    def take_prepared(self, name: str) -> PreparedView | None:
        """The preparation `add_view` kept for the view `name` (see `keep_prepared`), once, if the parameters have
        not moved since (None otherwise): e.g. a captured view's Fisher pass and then its calibration map."""
        kept = self._prepared.pop(name, None)
        if kept is None:
            return None
        prepared, stamp = kept
        now = self._param_stamp()
        same = len(now) == len(stamp) and all(a is b and va == vb for (a, va), (b, vb) in zip(now, stamp))
        return prepared if same else None

    # --- following the model ----------------------------------------------------------------

    def _check_aligned(self) -> None:
        n = len(self.model)
        if next(iter(self.H.values())).shape[0] != n:
            raise RuntimeError(
                f"FisherAccumulator holds {next(iter(self.H.values())).shape[0]} Gaussians, the model has {n}: "
                "call remap(new_to_old) or recompute() after densification"
            )

    def remap(self, new_to_old: Tensor) -> None:
        """Carry H to a new set of Gaussians: `new_to_old [N_new]` old index of each new Gaussian, -1 for none."""
        idx = new_to_old.to(device=next(iter(self.H.values())).device, dtype=torch.long)
        keep = idx >= 0
        for g, h in self.H.items():
            out = h.new_zeros((idx.shape[0], *h.shape[1:]))
            out[keep] = h[idx[keep]]
            self.H[g] = out

    def recompute(self, model: GaussianModel | None = None, progress: Callable | None = None) -> None:
        """H from scratch over the remembered views at the model's current parameters."""
        if not self.keep_views:
            raise RuntimeError("recompute needs keep_views=True")
        if model is not None:
            self.model = model
        views, self.views = self.views, []
        self.H, self.n_added = self._zeros(), 0
        self._prepared.clear()
        items = views if progress is None else progress(views)
        for v in items:
            self.add_view(v.camera, v.pixel_weights, v.name)

    def sync(self, model: GaussianModel | None = None) -> bool:
        """Recompute if the model's Gaussian count no longer matches; returns whether it did."""
        if model is not None:
            self.model = model
        if next(iter(self.H.values())).shape[0] == len(self.model):
            return False
        self.recompute()
        return True

    # --- checkpoints ------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {
            "groups": list(self.groups),
            "H": {g: h.detach().cpu() for g, h in self.H.items()},
            "n_added": self.n_added,
            "views": [{"K": v.camera.K, "viewmat": v.camera.viewmat, "width": v.camera.width, "height": v.camera.height,
                       "camera_name": v.camera.name, "meta": dict(v.camera.meta), "pixel_weights": v.pixel_weights,
                       "name": v.name} for v in self.views],
        }

    def load_state_dict(self, state: dict) -> None:
        self.groups = check_groups(state["groups"])
        device = self.model.device
        self.H = {g: h.to(device) for g, h in state["H"].items()}
        self.n_added = int(state["n_added"])
        self.views = [
            FisherView(Camera(K=v["K"], viewmat=v["viewmat"], width=v["width"], height=v["height"], name=v["camera_name"],
                              meta=dict(v.get("meta") or {})), v["pixel_weights"], v["name"])
            for v in state["views"]
        ]
