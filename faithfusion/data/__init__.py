"""Scene readers into one SceneData (DriveStudio, nerfstudio, COLMAP, LLFF).

`load_scene(path)` detects the format; the readers are `read_drivestudio`, `read_nerfstudio`,
`read_colmap` and `read_llff`. All geometry is in scene coordinates (see `SceneTransform`).
"""

from faithfusion.data.load import detect_format, load_scene
from faithfusion.data.scene import Frame, SceneData, SceneError, SceneTransform, holdout_split

__all__ = ["Frame", "SceneData", "SceneError", "SceneTransform", "detect_format", "holdout_split", "load_scene"]
