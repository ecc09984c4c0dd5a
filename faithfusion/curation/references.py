"""The reference view of each sample (by `faithfusion.fixers.reference`'s rule), its PNG written once per scene."""

from __future__ import annotations

from pathlib import Path

from faithfusion.cameras import Camera
from faithfusion.curation.files import rel, save_png
from faithfusion.data.scene import SceneData
from faithfusion.fixers.reference import ReferencePicker


class References:
    """The reference training image of a sample's camera, and the file that holds it."""

    def __init__(self, scene: SceneData, train_ids: list[int], scale: float, folder: Path, root: Path) -> None:
        self.scene, self.scale, self.folder, self.root = scene, scale, folder, root
        self.picker = ReferencePicker(train_ids, [scene.camera(i) for i in train_ids])

    def pick(self, cam: Camera, frame: int | None = None) -> int:
        """Frame index of the reference of `cam`, rendered from captured frame `frame` (None: no frame)."""
        return self.picker.pick(cam, frame)

    def path(self, index: int) -> str:
        """Relative path of the reference PNG of training frame `index` (written once)."""
        f = self.scene.frames[index]
        p = self.folder / f"{f.timestep:03d}_{f.cam_name}_{index:04d}.png"
        if not p.is_file():
            save_png(p, self.scene.load_image(index, self.scale))
        return rel(p, self.root)
