"""What `--fixer PATH_OR_ID` points at, and reading published diffusion weights exactly as released.

Four kinds are recognised (`detect_fixer_source`):

- `project`: a fixer saved here (`config.json` + `model.safetensors`, `fixers/base.py`).
- `difix-pipeline`: a Difix3D+ pipeline folder as published on the hub (`nvidia/difix`, `nvidia/difix_ref`):
  `model_index.json` naming `DifixPipeline`, and `unet/`, `vae/`, `text_encoder/`, `tokenizer/`, `scheduler/`.
  Its VAE holds the skip convolutions (`decoder.skip_conv_1..N`) and the decoder LoRA (adapter `vae_skip`,
  weights under peft's names: `<module>.base_layer.weight`, `<module>.lora_A.vae_skip.weight`, ...); its
  `vae/config.json` adds `lora_rank`, `gamma`, `ignore_skip` to AutoencoderKL's. `difix_ref` ships its own
  multi-view UNet code (`unet/*.py`, joint self-attention over the two views); `difix` a stock UNet.
- `difix-pkl`: a checkpoint written by Difix3D's training (`src/model.py: save_ckpt`): a torch pickle with
  `state_dict_unet`, `state_dict_vae` (only the LoRA and skip tensors), `rank_vae`,
  `vae_lora_target_modules` (and `optimizer`). Its base weights are SD-Turbo's.
- `sd-turbo`: a plain Stable Diffusion folder (SD-Turbo: `model_index.json` naming StableDiffusionPipeline, or
  the five component folders alone); Difix is then built on it with fresh skips and LoRA, to be trained.
- `cogvideox`: a CogVideoX folder in the diffusers layout (`THUDM/CogVideoX-5b-I2V`: `model_index.json` naming
  CogVideoXImageToVideoPipeline, or CogVideoXPipeline for the text-to-video ones; `transformer/`, `vae/`,
  `scheduler/` are read, `text_encoder/` and `tokenizer/` are not: EIGent learns its prompt embedding), or those
  folders alone. EIGent's video backbone (`eigent.EIGentCogVideoX`); a VideoPainter branch in `branch/` is used.
- `videopainter-branch`: a VideoPainter context branch (`config.json` naming CogvideoXBranchModel +
  `diffusion_pytorch_model.safetensors`, `fixers/videopainter.py`), laid over a CogVideoX-5b-I2V base.
- `dynamicrafter`: GenFusion's DynamiCrafter RGB-D checkpoint (a Lightning `.ckpt` whose `state_dict`, or a
  DeepSpeed one whose `module`, holds `model.diffusion_model.*`; or a folder with one such file, as its hub
  repository holds it): `fixers/dynamicrafter.py`.

A hub id (`owner/name`) is looked up in the local Hugging Face cache; nothing is downloaded unless
`allow_download` is set. Weights are read file by file and loaded strictly (`load_strictly`): a missing or
unexpected tensor is an error naming the file and the keys, never a warning.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from faithfusion.errors import UserError

Kind = Literal["project", "difix-pipeline", "difix-pkl", "sd-turbo", "cogvideox", "videopainter-branch", "dynamicrafter"]
COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
DIFIX_VAE_KEYS = ("lora_rank", "gamma", "ignore_skip")  # what Difix's vae/config.json adds to AutoencoderKL's
SD_PIPELINES = ("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline")
PKL_SUFFIXES = (".pkl", ".pt", ".pth", ".ckpt")
LORA_ADAPTER = "vae_skip"
DEFAULT_BASE = "stabilityai/sd-turbo"  # what a Difix3D .pkl is trained on
COGVIDEOX_PIPELINES = ("CogVideoXImageToVideoPipeline", "CogVideoXPipeline")
COGVIDEOX_COMPONENTS = ("transformer", "vae", "scheduler")  # what EIGent reads of a CogVideoX folder
DEFAULT_VIDEO_BASE = "THUDM/CogVideoX-5b-I2V"  # what VideoPainter's published branch is trained on
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
                 "model.safetensors", "model.fp16.safetensors", "diffusion_pytorch_model.bin", "pytorch_model.bin")


class FixerSourceError(UserError, ValueError):
    """`--fixer` names something that is not a fixer of a known kind (the message says what is missing)."""


class MissingFixerSourceError(FixerSourceError, FileNotFoundError):
    """`--fixer` names a path that does not exist and is not a hub id."""


class CheckpointKeysError(UserError, ValueError):
    """A checkpoint's tensors do not match the model: missing, unexpected or of the wrong shape."""


@dataclass(frozen=True)
class FixerSource:
    kind: Kind
    path: Path  # a local folder (or the .pkl file)
    multiview: bool = False  # difix-pipeline: the UNet is difix_ref's (joint attention over render + reference)
    branch: Path | None = None  # cogvideox: a VideoPainter branch folder inside it (`branch/`)


# --- where the files are -----------------------------------------------------------------------


def resolve_local(spec: str | Path, allow_download: bool = False) -> Path:
    """A local file or folder for `spec`: the path itself, or a hub id's snapshot in the local cache
    (downloaded first only when `allow_download`)."""
    path = Path(spec).expanduser()
    if path.exists():
        return path
    if not _HUB_ID.fullmatch(str(spec)):
        raise MissingFixerSourceError(f"{spec}: no such file or folder (nor a hub id owner/name)")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id=str(spec), local_files_only=not allow_download))
    except Exception as err:  # noqa: BLE001  (hub errors have many classes; all mean "not here")
        how = ("it could not be downloaded" if allow_download else
               "nothing is downloaded unless asked: fetch it with `huggingface-cli download " f"{spec}` "
               "or allow downloads (local_files_only=False)")
        raise FixerSourceError(f"{spec}: not a local path and not in the local Hugging Face cache; {how} "
                               f"({type(err).__name__})") from err


def _component_problem(folder: Path, name: str) -> str | None:
    sub = folder / name
    if not sub.is_dir():
        return f"{name}/"
    if name == "tokenizer":
        return None if any((sub / f).is_file() for f in ("vocab.json", "tokenizer.json", "tokenizer_config.json")) \
            else f"{name}/ (vocab.json or tokenizer.json)"
    if name == "scheduler":
        return None if (sub / "scheduler_config.json").is_file() else f"{name}/scheduler_config.json"
    missing = [] if (sub / "config.json").is_file() else ["config.json"]
    if not _weight_files(sub):
        missing.append("diffusion_pytorch_model.safetensors" if name in ("unet", "vae", "transformer") else "model.safetensors")
    return f"{name}/ ({', '.join(missing)})" if missing else None


def _weight_files(sub: Path) -> list[Path]:
    for index in sorted(sub.glob("*.safetensors.index.json")):
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [sub / s for s in shards]
    for name in _WEIGHT_FILES:
        if (sub / name).is_file():
            return [sub / name]
    return []


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise FixerSourceError(f"{path}: unreadable JSON ({err})") from err


def detect_fixer_source(spec: str | Path, allow_download: bool = False) -> FixerSource:
    """Which kind of fixer `spec` (a path or a hub id) holds; a `FixerSourceError` names what is missing."""
    path = resolve_local(spec, allow_download)
    from faithfusion.fixers.dynamicrafter_layout import checkpoint_kind, is_dynamicrafter_checkpoint

    if path.is_file():
        kind_of_file = checkpoint_kind(path) if path.suffix in PKL_SUFFIXES + (".safetensors",) else None
        if kind_of_file == "dynamicrafter":
            return FixerSource("dynamicrafter", path)
        if kind_of_file == "other":
            raise FixerSourceError(f"{path}: a checkpoint, but neither a Difix3D training checkpoint (state_dict_unet, "
                                   "state_dict_vae, rank_vae, vae_lora_target_modules) nor a GenFusion / DynamiCrafter one "
                                   "(state_dict or module with model.diffusion_model.*)")
        if path.suffix in PKL_SUFFIXES:
            return FixerSource("difix-pkl", path)
        raise FixerSourceError(f"{path}: a file, but not a Difix3D training checkpoint ({', '.join(PKL_SUFFIXES)})")
    if (path / "config.json").is_file() and (path / "model.safetensors").is_file():
        return FixerSource("project", path)
    from faithfusion.fixers.branch_layout import BRANCH_WEIGHTS, is_branch_folder

    if is_branch_folder(path):
        if not _weight_files(path):
            raise FixerSourceError(f"{path}: a VideoPainter branch folder missing {BRANCH_WEIGHTS}")
        return FixerSource("videopainter-branch", path)
    video = _cogvideox_kind(path)
    if video is not None:
        return video
    index = path / "model_index.json"
    kind: Kind | None = None
    multiview = False
    if index.is_file():
        data = _read_json(index)
        name = data.get("_class_name")
        if name == "DifixPipeline":
            kind = "difix-pipeline"
            lib = (data.get("unet") or [None])[0]
            multiview = lib not in (None, "diffusers") or any((path / "unet").glob("*.py"))
        elif name in SD_PIPELINES:
            kind = "sd-turbo"
        else:
            raise FixerSourceError(f"{index}: a {name} pipeline; a fixer is a DifixPipeline (nvidia/difix, "
                                   "nvidia/difix_ref), a Stable Diffusion pipeline such as SD-Turbo, or a CogVideoX "
                                   f"pipeline ({', '.join(COGVIDEOX_PIPELINES)})")
    elif all((path / c).is_dir() for c in COMPONENTS):
        vae_cfg = path / "vae" / "config.json"
        difix_vae = vae_cfg.is_file() and any(k in _read_json(vae_cfg) for k in DIFIX_VAE_KEYS)
        kind = "difix-pipeline" if difix_vae else "sd-turbo"
        multiview = difix_vae and any((path / "unet").glob("*.py"))
    else:
        ckpts = sorted(path.glob("*.ckpt")) if path.is_dir() else []
        if len(ckpts) == 1 and is_dynamicrafter_checkpoint(ckpts[0]):
            return FixerSource("dynamicrafter", ckpts[0])
        present = sorted(p.name for p in path.iterdir())[:8] if path.is_dir() else []
        raise FixerSourceError(
            f"{path}: not a fixer. Expected one of: a saved fixer (config.json + model.safetensors); a Difix or "
            f"SD-Turbo pipeline folder (model_index.json + {', '.join(c + '/' for c in COMPONENTS)}); a Difix3D "
            f".pkl checkpoint; a CogVideoX folder ({', '.join(c + '/' for c in COGVIDEOX_COMPONENTS)}); a VideoPainter "
            f"branch; a GenFusion / DynamiCrafter .ckpt (state_dict with model.diffusion_model.*). Found: {present or 'nothing'}")
    problems = [p for c in COMPONENTS if (p := _component_problem(path, c))]
    if problems:
        raise FixerSourceError(f"{path}: a {kind} folder missing {'; '.join(problems)}")
    return FixerSource(kind, path, multiview)


def _cogvideox_kind(path: Path) -> FixerSource | None:
    """A `cogvideox` source if `path` is a CogVideoX folder (by its model_index.json, or by a transformer/ whose
    config names CogVideoXTransformer3DModel); None if it is not one; an error naming what is missing."""
    index = path / "model_index.json"
    name = _read_json(index).get("_class_name") if index.is_file() else None
    tcfg = path / "transformer" / "config.json"
    by_parts = name is None and tcfg.is_file() and _read_json(tcfg).get("_class_name") == "CogVideoXTransformer3DModel"
    if name not in COGVIDEOX_PIPELINES and not by_parts:
        return None
    problems = [p for c in COGVIDEOX_COMPONENTS if (p := _component_problem(path, c))]
    if problems:
        raise FixerSourceError(f"{path}: a {name or 'CogVideoX'} folder missing {'; '.join(problems)}")
    from faithfusion.fixers.branch_layout import is_branch_folder

    branch = path / "branch"
    return FixerSource("cogvideox", path, branch=branch if is_branch_folder(branch) else None)


# --- reading tensors ---------------------------------------------------------------------------


def read_component_state(sub: Path) -> dict[str, Tensor]:
    """Every tensor of a diffusers/transformers component folder (one file, a sharded index, or a .bin)."""
    files = _weight_files(sub)
    if not files:
        raise FixerSourceError(f"{sub}: no weights file ({_WEIGHT_FILES[0]})")
    state: dict[str, Tensor] = {}
    for f in files:
        if f.suffix == ".safetensors":
            from safetensors.torch import load_file

            state.update(load_file(str(f)))
        else:
            state.update(torch.load(f, map_location="cpu", weights_only=True))
    return state


def check_component_keys(module: nn.Module, sub: Path) -> None:
    """Every tensor of the component folder `sub` (read by name and shape only) must be one of `module`'s, of the
    same shape, and every tensor `module` saves must be in the files: a `CheckpointKeysError` otherwise (diffusers'
    `from_pretrained` only warns)."""
    files = _weight_files(sub)
    shapes: dict[str, tuple[int, ...]] = {}
    for f in files:
        if f.suffix != ".safetensors":
            shapes.update({k: tuple(v.shape) for k, v in torch.load(f, map_location="cpu", weights_only=True).items()})
            continue
        from safetensors import safe_open

        with safe_open(str(f), framework="pt") as fh:
            shapes.update({k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()})
    own = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    problems = []
    if missing := sorted(set(own) - set(shapes)):
        problems.append(f"{len(missing)} tensors missing, e.g. {missing[:4]}")
    if unexpected := sorted(set(shapes) - set(own)):
        problems.append(f"{len(unexpected)} tensors with no place in the model, e.g. {unexpected[:4]}")
    if wrong := sorted(k for k in set(own) & set(shapes) if own[k] != shapes[k]):
        problems.append(f"{len(wrong)} of the wrong shape, e.g. {wrong[0]}: {shapes[wrong[0]]} vs {own[wrong[0]]}")
    if problems:
        raise CheckpointKeysError(f"{sub}: {'; '.join(problems)}")


def load_strictly(module: nn.Module, state: dict[str, Tensor], where: str | Path,
                  may_miss: set[str] | frozenset[str] = frozenset(), assign: bool = False) -> None:
    """Load `state` into `module`: every key must name a tensor of the module with the same shape, and every
    tensor of the module must be given, except those in `may_miss` (they keep their initialisation)."""
    own = module.state_dict()
    unexpected = sorted(set(state) - set(own))
    missing = sorted(set(own) - set(state) - set(may_miss))
    shapes = sorted(k for k in set(state) & set(own) if tuple(state[k].shape) != tuple(own[k].shape))
    problems = []
    if missing:
        problems.append(f"{len(missing)} tensors missing, e.g. {missing[:4]}")
    if unexpected:
        problems.append(f"{len(unexpected)} tensors with no place in the model, e.g. {unexpected[:4]}")
    if shapes:
        k = shapes[0]
        problems.append(f"{len(shapes)} of the wrong shape, e.g. {k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}")
    if problems:
        raise CheckpointKeysError(f"{where}: {'; '.join(problems)}")
    module.load_state_dict(state, strict=not may_miss, assign=assign)


def normalise_lora_keys(state: dict[str, Tensor], own: set[str], adapter: str = LORA_ADAPTER) -> dict[str, Tensor]:
    """Map a LoRA-wrapped module's tensors onto `own`'s names: plain `<m>.weight` -> `<m>.base_layer.weight` where
    the model wraps `<m>`, and adapter-less `lora_A.weight` (peft's saved form) -> `lora_A.<adapter>.weight`."""
    out = {}
    for k, v in state.items():
        if k not in own:
            cand = re.sub(r"\.(lora_[AB])\.(weight|bias)$", rf".\1.{adapter}.\2", k)
            if cand == k:
                stem, _, leaf = k.rpartition(".")
                cand = f"{stem}.base_layer.{leaf}"
            if cand in own:
                k = cand
        out[k] = v
    return out


# --- Difix3D's training checkpoint (.pkl) -------------------------------------------------------


@dataclass
class DifixPkl:
    path: Path
    unet: dict[str, Tensor]
    vae: dict[str, Tensor]  # LoRA and skip tensors only
    rank: int
    targets: list[str]


def read_difix_pkl(path: str | Path) -> DifixPkl:
    """Read a Difix3D training checkpoint; a `FixerSourceError` names the file and the missing entry."""
    path = Path(path)
    try:
        # Difix3D pickles plain dicts of tensors, ints, lists and the optimizer's state: no classes of its own
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001
        raise FixerSourceError(f"{path}: not a readable torch checkpoint ({type(err).__name__}: {err})") from err
    need = ("state_dict_unet", "state_dict_vae", "rank_vae", "vae_lora_target_modules")
    lacking = [k for k in need if not isinstance(sd, dict) or k not in sd]
    if lacking:
        raise FixerSourceError(f"{path}: not a Difix3D checkpoint (lacks {', '.join(lacking)}; "
                               "src/model.py save_ckpt writes them)")
    return DifixPkl(path, dict(sd["state_dict_unet"]), dict(sd["state_dict_vae"]), int(sd["rank_vae"]),
                    [str(t) for t in sd["vae_lora_target_modules"]])


def save_difix_pkl(unet: nn.Module, vae: nn.Module, rank: int, targets: list[str], path: str | Path) -> Path:
    """Write a checkpoint in Difix3D's `save_ckpt` layout (the optimizer's state left empty)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = {
        "vae_lora_target_modules": list(targets),
        "rank_vae": int(rank),
        "state_dict_unet": {k: v.detach().cpu() for k, v in unet.state_dict().items()},
        "state_dict_vae": {k: v.detach().cpu() for k, v in vae.state_dict().items() if "lora" in k or "skip" in k},
        "optimizer": {"state": {}, "param_groups": []},
    }
    torch.save(sd, path)
    return path
