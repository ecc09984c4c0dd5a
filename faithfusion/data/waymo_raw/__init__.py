"""Raw Waymo Open Dataset v1 files (TFRecord files of `Frame` protobufs) without TensorFlow.

`tfrecord` reads the record framing and checks its CRCs; `proto` builds the few message classes
needed from Waymo's `dataset.proto` / `label.proto` at run time (no protoc, no waymo package);
`lidar` turns range images into points; `convert` writes DriveStudio's processed-Waymo layout.
"""

from faithfusion.data.waymo_raw.convert import ConvertSummary, convert_waymo
from faithfusion.data.waymo_raw.tfrecord import TFRecordError, read_records, write_records

__all__ = ["ConvertSummary", "TFRecordError", "convert_waymo", "read_records", "write_records"]
