"""Scene readers into one SceneData (DriveStudio, nerfstudio, COLMAP, LLFF)."""
