"""TFRecord framing, read and written without TensorFlow.

Each record is: uint64 length (little-endian), uint32 masked CRC32C of those 8 bytes, `length` bytes
of payload, uint32 masked CRC32C of the payload. Masking (TensorFlow's `crc32c::Mask`) rotates the
CRC right by 15 bits and adds 0xa282ead8 (mod 2^32).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

import google_crc32c

from faithfusion.errors import UserError

_MASK_DELTA = 0xA282EAD8


class TFRecordError(UserError, ValueError):
    """A TFRecord file that is missing, truncated or fails its CRC check."""


def masked_crc32c(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def _read_exact(fh: BinaryIO, n: int, path: Path, index: int, what: str) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise TFRecordError(f"{path}: record {index} is truncated ({what}: expected {n} bytes, found {len(data)})")
    return data


def read_records(path: str | Path, check_crc: bool = True) -> Iterator[tuple[int, bytes]]:
    """Yield (record index, payload) of a TFRecord file, one record in memory at a time.

    Raises TFRecordError naming the file and the record index for a truncated record or a CRC mismatch.
    """
    path = Path(path)
    if not path.is_file():
        raise TFRecordError(f"{path}: TFRecord file is missing")
    with path.open("rb") as fh:
        index = 0
        while True:
            header = fh.read(12)
            if not header:
                return
            if len(header) != 12:
                raise TFRecordError(f"{path}: record {index} is truncated (header: expected 12 bytes, found {len(header)})")
            length_bytes, (length_crc,) = header[:8], struct.unpack("<I", header[8:])
            if check_crc and masked_crc32c(length_bytes) != length_crc:
                raise TFRecordError(f"{path}: record {index} has a corrupt length (CRC32C mismatch in its header): "
                                    "not a TFRecord file, or a damaged one")
            (length,) = struct.unpack("<Q", length_bytes)
            payload = _read_exact(fh, length, path, index, "payload")
            (data_crc,) = struct.unpack("<I", _read_exact(fh, 4, path, index, "payload CRC"))
            if check_crc and masked_crc32c(payload) != data_crc:
                raise TFRecordError(f"{path}: record {index} is corrupt (CRC32C mismatch of its {length}-byte payload)")
            yield index, payload
            index += 1


def encode_record(payload: bytes) -> bytes:
    """One record's bytes, framed as TensorFlow writes it."""
    length = struct.pack("<Q", len(payload))
    return length + struct.pack("<I", masked_crc32c(length)) + payload + struct.pack("<I", masked_crc32c(payload))


def write_records(path: str | Path, payloads: Iterable[bytes]) -> None:
    """Write a TFRecord file (uncompressed) of the given payloads."""
    with Path(path).open("wb") as fh:
        for payload in payloads:
            fh.write(encode_record(payload))
