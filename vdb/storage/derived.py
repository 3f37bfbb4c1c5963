"""Derived files: state computed from LMDB (the source of truth) and saved beside it so that
opening is fast, such as index checkpoints. One format and one verification routine for all
of them: a derived file is trusted only once it is verified whole, and a file that fails is
rebuilt from LMDB by its owner, never half-used.

Layout:
  8 bytes   magic (one per kind of file)
  u64       length of the JSON header
  u32       CRC-32 of the JSON header
  JSON      {"fields": {...}, "sections": [{name, dtype, shape, offset, nbytes, crc32}]}
  ...       each section at a 64-byte aligned offset from the end of the header block;
            dtype "bytes" for an opaque blob, else a numeric numpy dtype

Written to a temporary name, fsynced, then renamed over the old file (and the directory
fsynced), so a crash leaves either the old file or the new one.
"""

import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from vdb.errors import shown

HEAD = struct.Struct("<QI")  # header length, header CRC-32
ALIGN = 64
MAX_HEADER = 64 << 20
NUMERIC = set("biuf")  # dtype kinds a section may have: bool, int, uint, float


class Unsound(Exception):
    """A derived file that must not be used; the message says why."""


def write(path: Path, magic: bytes, fields: dict, sections: dict) -> None:
    """sections: name -> numpy array or bytes."""
    table, offset, parts = [], 0, []
    for name, value in sections.items():
        if isinstance(value, bytes | bytearray | memoryview):
            data, dtype, shape = bytes(value), "bytes", [len(value)]
        else:
            data = np.ascontiguousarray(value)
            dtype, shape = data.dtype.str, list(data.shape)
        nbytes = len(data) if dtype == "bytes" else data.nbytes
        table.append(
            {
                "name": name,
                "dtype": dtype,
                "shape": shape,
                "offset": offset,
                "nbytes": nbytes,
                "crc32": zlib.crc32(data),
            }
        )
        parts.append((data, nbytes))
        offset += _pad(nbytes)
    head = json.dumps({"fields": fields, "sections": table}).encode()
    base = _pad(len(magic) + HEAD.size + len(head))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(magic + HEAD.pack(len(head), zlib.crc32(head)) + head)
            fh.write(b"\0" * (base - fh.tell()))
            for data, nbytes in parts:
                fh.write(data if isinstance(data, bytes) else data.reshape(-1).view(np.uint8))
                fh.write(b"\0" * (_pad(nbytes) - nbytes))
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read(path: Path, magic: bytes, expect: dict) -> tuple[dict, dict] | None:
    """(fields, sections) of a derived file, verified whole: the magic, the header's checksum,
    every field named in `expect` equal to it, and every section inside the file and passing
    its checksum. Arrays are memory-mapped copy-on-write; blobs come back as bytes.
    None when the file does not exist; Unsound(reason) when it must not be used."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(len(magic) + HEAD.size)
            if len(head) < len(magic) + HEAD.size or head[: len(magic)] != magic:
                raise Unsound("it is not a file of this kind (bad magic)")
            length, crc = HEAD.unpack_from(head, len(magic))
            if length > min(size, MAX_HEADER):
                raise Unsound(f"its header length {length} runs past the file")
            raw = fh.read(length)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise Unsound(f"it cannot be read: {exc}") from None
    if len(raw) != length or zlib.crc32(raw) != crc:
        raise Unsound("its header fails its checksum")
    try:
        header = json.loads(raw)
        fields, table = header["fields"], header["sections"]
    except (ValueError, KeyError, TypeError):
        raise Unsound("its header does not parse") from None
    for name, want in expect.items():
        if fields.get(name) != want:
            raise Unsound(f"its {name} is {shown(fields.get(name))}, not {shown(want)}")
    base = _pad(len(magic) + HEAD.size + length)
    return fields, {e["name"]: _section(path, size, base, e) for e in table}


def _section(path: Path, size: int, base: int, entry: dict):
    try:
        name, dtype, shape = str(entry["name"]), entry["dtype"], tuple(entry["shape"])
        offset, nbytes, crc = int(entry["offset"]), int(entry["nbytes"]), entry["crc32"]
    except (KeyError, TypeError, ValueError):
        raise Unsound("a section entry does not parse") from None
    start = base + offset
    if offset < 0 or nbytes < 0 or start + nbytes > size:
        raise Unsound(f"section {name} runs past the end of the file")
    if dtype == "bytes":
        with open(path, "rb") as fh:
            fh.seek(start)
            data = fh.read(nbytes)
    else:
        try:
            dt = np.dtype(dtype)
        except TypeError:
            raise Unsound(f"section {name} has dtype {shown(dtype)}") from None
        if dt.kind not in NUMERIC or any(not isinstance(d, int) or d < 0 for d in shape):
            raise Unsound(f"section {name} has dtype {dt.str} and shape {shown(shape)}")
        if int(np.prod(shape, dtype=np.int64)) * dt.itemsize != nbytes:
            raise Unsound(f"section {name}: shape {shape} of {dt.str} is not {nbytes} bytes")
        if nbytes:
            data = np.asarray(np.memmap(path, dtype=dt, mode="c", offset=start, shape=shape))
        else:
            data = np.zeros(shape, dt)
    if zlib.crc32(data) != crc:
        raise Unsound(f"section {name} fails its checksum")
    return data


def _pad(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN
