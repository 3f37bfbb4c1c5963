"""Checksums on every stored value. A sealed value is its body followed by a CRC-32 of the key
and the body (little-endian u32), so a flipped bit in either, or a value found under another
key, is caught when it is read. LMDB checks nothing of the kind itself.
"""

import struct
import zlib

from vdb.errors import DataCorruptedError

CRC = struct.Struct("<I")


def seal(key: bytes, body: bytes) -> bytes:
    return body + CRC.pack(zlib.crc32(body, zlib.crc32(key)))


def is_sound(key: bytes, raw) -> bool:
    """Whether a sealed value passes its checksum."""
    if raw is None or len(raw) < CRC.size:
        return False
    view = memoryview(raw)
    body = view[: len(view) - CRC.size]
    return zlib.crc32(body, zlib.crc32(key)) == CRC.unpack_from(view, len(view) - CRC.size)[0]


def unseal(key: bytes, raw, what: str) -> memoryview:
    """The body of a sealed value (a zero-copy view), or DataCorruptedError naming `what`."""
    if not is_sound(key, raw):
        raise DataCorruptedError(f"{what} fails its checksum")
    return memoryview(raw)[: len(raw) - CRC.size]
