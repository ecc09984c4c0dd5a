"""The Waymo Open Dataset v1 messages this package reads, built at run time from descriptors.

Field numbers and types follow `src/waymo_open_dataset/dataset.proto` and `label.proto` of the
waymo-open-dataset repository (proto2, package `waymo.open_dataset`). Only the fields the converter
needs are declared; every other field of a record is kept as an unknown field and ignored. Enums are
declared as int32 (the same varint on the wire), so a new enum value never drops a field.
"""

from __future__ import annotations

from functools import lru_cache
from types import SimpleNamespace

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

F = descriptor_pb2.FieldDescriptorProto
_OPT, _REP = F.LABEL_OPTIONAL, F.LABEL_REPEATED
_PACKAGE = "faithfusion.waymo_v1"  # own package name: never clashes with a real waymo_open_dataset import

# message -> [(field, number, type, label, message type or None, packed)]
_MESSAGES: dict[str, list[tuple]] = {
    "MatrixShape": [("dims", 1, F.TYPE_INT32, _REP, None, False)],
    "MatrixFloat": [("data", 1, F.TYPE_FLOAT, _REP, None, True), ("shape", 2, F.TYPE_MESSAGE, _OPT, "MatrixShape", False)],
    "MatrixInt32": [("data", 1, F.TYPE_INT32, _REP, None, True), ("shape", 2, F.TYPE_MESSAGE, _OPT, "MatrixShape", False)],
    "Transform": [("transform", 1, F.TYPE_DOUBLE, _REP, None, False)],
    "Velocity": [
        ("v_x", 1, F.TYPE_FLOAT, _OPT, None, False), ("v_y", 2, F.TYPE_FLOAT, _OPT, None, False),
        ("v_z", 3, F.TYPE_FLOAT, _OPT, None, False), ("w_x", 4, F.TYPE_DOUBLE, _OPT, None, False),
        ("w_y", 5, F.TYPE_DOUBLE, _OPT, None, False), ("w_z", 6, F.TYPE_DOUBLE, _OPT, None, False),
    ],
    "CameraCalibration": [
        ("name", 1, F.TYPE_INT32, _OPT, None, False),  # CameraName.Name
        ("intrinsic", 2, F.TYPE_DOUBLE, _REP, None, False),  # f_u f_v c_u c_v k1 k2 p1 p2 k3
        ("extrinsic", 3, F.TYPE_MESSAGE, _OPT, "Transform", False),  # camera -> vehicle
        ("width", 4, F.TYPE_INT32, _OPT, None, False),
        ("height", 5, F.TYPE_INT32, _OPT, None, False),
        ("rolling_shutter_direction", 6, F.TYPE_INT32, _OPT, None, False),
    ],
    "LaserCalibration": [
        ("name", 1, F.TYPE_INT32, _OPT, None, False),  # LaserName.Name
        ("beam_inclinations", 2, F.TYPE_DOUBLE, _REP, None, False),
        ("beam_inclination_min", 3, F.TYPE_DOUBLE, _OPT, None, False),
        ("beam_inclination_max", 4, F.TYPE_DOUBLE, _OPT, None, False),
        ("extrinsic", 5, F.TYPE_MESSAGE, _OPT, "Transform", False),  # lidar -> vehicle
    ],
    "ObjectCount": [("type", 1, F.TYPE_INT32, _OPT, None, False), ("count", 2, F.TYPE_INT32, _OPT, None, False)],
    "Stats": [
        ("laser_object_counts", 1, F.TYPE_MESSAGE, _REP, "ObjectCount", False),
        ("time_of_day", 2, F.TYPE_STRING, _OPT, None, False),
        ("location", 3, F.TYPE_STRING, _OPT, None, False),
        ("weather", 4, F.TYPE_STRING, _OPT, None, False),
        ("camera_object_counts", 5, F.TYPE_MESSAGE, _REP, "ObjectCount", False),
    ],
    "Context": [
        ("name", 1, F.TYPE_STRING, _OPT, None, False),
        ("camera_calibrations", 2, F.TYPE_MESSAGE, _REP, "CameraCalibration", False),
        ("laser_calibrations", 3, F.TYPE_MESSAGE, _REP, "LaserCalibration", False),
        ("stats", 4, F.TYPE_MESSAGE, _OPT, "Stats", False),
    ],
    "RangeImage": [
        ("range_image_compressed", 2, F.TYPE_BYTES, _OPT, None, False),  # zlib(MatrixFloat [H, W, 4])
        ("camera_projection_compressed", 3, F.TYPE_BYTES, _OPT, None, False),  # zlib(MatrixInt32 [H, W, 6])
        ("range_image_pose_compressed", 4, F.TYPE_BYTES, _OPT, None, False),  # zlib(MatrixFloat [H, W, 6])
        ("range_image_flow_compressed", 5, F.TYPE_BYTES, _OPT, None, False),  # zlib(MatrixFloat [H, W, 4])
        ("segmentation_label_compressed", 6, F.TYPE_BYTES, _OPT, None, False),
    ],
    "CameraImage": [
        ("name", 1, F.TYPE_INT32, _OPT, None, False),
        ("image", 2, F.TYPE_BYTES, _OPT, None, False),  # JPEG
        ("pose", 3, F.TYPE_MESSAGE, _OPT, "Transform", False),
        ("velocity", 4, F.TYPE_MESSAGE, _OPT, "Velocity", False),
        ("pose_timestamp", 5, F.TYPE_DOUBLE, _OPT, None, False),
        ("shutter", 6, F.TYPE_DOUBLE, _OPT, None, False),
        ("camera_trigger_time", 7, F.TYPE_DOUBLE, _OPT, None, False),
        ("camera_readout_done_time", 8, F.TYPE_DOUBLE, _OPT, None, False),
    ],
    "Laser": [
        ("name", 1, F.TYPE_INT32, _OPT, None, False),
        ("ri_return1", 2, F.TYPE_MESSAGE, _OPT, "RangeImage", False),
        ("ri_return2", 3, F.TYPE_MESSAGE, _OPT, "RangeImage", False),
    ],
    "Box": [
        ("center_x", 1, F.TYPE_DOUBLE, _OPT, None, False), ("center_y", 2, F.TYPE_DOUBLE, _OPT, None, False),
        ("center_z", 3, F.TYPE_DOUBLE, _OPT, None, False), ("width", 4, F.TYPE_DOUBLE, _OPT, None, False),
        ("length", 5, F.TYPE_DOUBLE, _OPT, None, False), ("height", 6, F.TYPE_DOUBLE, _OPT, None, False),
        ("heading", 7, F.TYPE_DOUBLE, _OPT, None, False),
    ],
    "Metadata": [
        ("speed_x", 1, F.TYPE_DOUBLE, _OPT, None, False), ("speed_y", 2, F.TYPE_DOUBLE, _OPT, None, False),
        ("accel_x", 3, F.TYPE_DOUBLE, _OPT, None, False), ("accel_y", 4, F.TYPE_DOUBLE, _OPT, None, False),
        ("speed_z", 5, F.TYPE_DOUBLE, _OPT, None, False), ("accel_z", 6, F.TYPE_DOUBLE, _OPT, None, False),
    ],
    "Label": [
        ("box", 1, F.TYPE_MESSAGE, _OPT, "Box", False),  # vehicle frame of the Frame pose
        ("metadata", 2, F.TYPE_MESSAGE, _OPT, "Metadata", False),
        ("type", 3, F.TYPE_INT32, _OPT, None, False),  # Label.Type: 1 vehicle, 2 pedestrian, 3 sign, 4 cyclist
        ("id", 4, F.TYPE_STRING, _OPT, None, False),
        ("detection_difficulty_level", 5, F.TYPE_INT32, _OPT, None, False),
        ("tracking_difficulty_level", 6, F.TYPE_INT32, _OPT, None, False),
        ("num_lidar_points_in_box", 7, F.TYPE_INT32, _OPT, None, False),
        ("most_visible_camera_name", 11, F.TYPE_STRING, _OPT, None, False),
        ("camera_synced_box", 12, F.TYPE_MESSAGE, _OPT, "Box", False),
        ("num_top_lidar_points_in_box", 13, F.TYPE_INT32, _OPT, None, False),
    ],
    "Frame": [
        ("context", 1, F.TYPE_MESSAGE, _OPT, "Context", False),
        ("timestamp_micros", 2, F.TYPE_INT64, _OPT, None, False),
        ("pose", 3, F.TYPE_MESSAGE, _OPT, "Transform", False),  # vehicle -> world
        ("images", 4, F.TYPE_MESSAGE, _REP, "CameraImage", False),
        ("lasers", 5, F.TYPE_MESSAGE, _REP, "Laser", False),
        ("laser_labels", 6, F.TYPE_MESSAGE, _REP, "Label", False),
    ],
}

CAMERA_NAMES = {1: "FRONT", 2: "FRONT_LEFT", 3: "FRONT_RIGHT", 4: "SIDE_LEFT", 5: "SIDE_RIGHT"}
"""CameraName.Name values of the five v1 cameras; DriveStudio's camera id is `name - 1`."""
LASER_NAMES = {1: "TOP", 2: "FRONT", 3: "SIDE_LEFT", 4: "SIDE_RIGHT", 5: "REAR"}
"""LaserName.Name values; DriveStudio's laser id column is `name - 1`."""
LABEL_TYPES = {0: "unknown", 1: "Vehicle", 2: "Pedestrian", 3: "Sign", 4: "Cyclist"}
"""Label.Type values, with the class names DriveStudio writes."""


def _file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    fd = descriptor_pb2.FileDescriptorProto(name="faithfusion_waymo_v1.proto", package=_PACKAGE, syntax="proto2")
    for msg_name, fields in _MESSAGES.items():
        msg = fd.message_type.add(name=msg_name)
        for name, number, ftype, label, type_name, packed in fields:
            field = msg.field.add(name=name, number=number, type=ftype, label=label)
            if type_name is not None:
                field.type_name = f".{_PACKAGE}.{type_name}"
            if packed:
                field.options.packed = True
    return fd


@lru_cache(maxsize=1)
def messages() -> SimpleNamespace:
    """The message classes, by name: `messages().Frame.FromString(payload)`."""
    pool = descriptor_pool.DescriptorPool()
    pool.Add(_file_descriptor())
    return SimpleNamespace(**{
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}")) for name in _MESSAGES
    })
