"""`load_scene`: pick the reader from what the folder holds."""

from __future__ import annotations

from pathlib import Path

from faithfusion.data.scene import SceneData, SceneError


def detect_format(path: str | Path) -> str:
    """'drivestudio' (ego_pose/ or nuScenes' lidar_pose/; which of its six datasets: `ds_layouts.detect_layout`), 'nerfstudio' (transforms.json), 'colmap' (sparse/0, sparse/ or a
    model folder) or 'llff' (poses_bounds.npy), checked in that order; SceneError if none."""
    path = Path(path)
    if not path.exists():
        raise SceneError(f"{path}: scene path does not exist")
    if path.is_file():
        if path.name.endswith(".json"):
            return "nerfstudio"
        if path.name == "poses_bounds.npy":
            return "llff"
        raise SceneError(f"{path}: not a scene file (expected a folder, transforms.json or poses_bounds.npy)")
    if (path / "ego_pose").is_dir() or (path / "lidar_pose").is_dir():
        return "drivestudio"
    if (path / "transforms.json").is_file():
        return "nerfstudio"
    for model in (path / "sparse" / "0", path / "sparse", path):
        if (model / "cameras.bin").is_file() or (model / "cameras.txt").is_file():
            return "colmap"
    if (path / "poses_bounds.npy").is_file():
        return "llff"
    raise SceneError(
        f"{path}: no known scene format (looked for ego_pose/, lidar_pose/, transforms.json, sparse/0, sparse/, poses_bounds.npy)"
    )


def load_scene(path: str | Path, **opts) -> SceneData:
    """Read any supported scene; `opts` go to the reader (e.g. holdout_every, cameras, max_points)."""
    fmt = detect_format(path)
    path = Path(path)
    if fmt == "drivestudio":
        from faithfusion.data.drivestudio import read_drivestudio

        return read_drivestudio(path, **opts)
    if fmt == "nerfstudio":
        from faithfusion.data.nerfstudio import read_nerfstudio

        return read_nerfstudio(path, **opts)
    if fmt == "colmap":
        from faithfusion.data.colmap import read_colmap

        return read_colmap(path, **opts)
    from faithfusion.data.llff import read_llff

    return read_llff(path.parent if path.is_file() else path, **opts)
