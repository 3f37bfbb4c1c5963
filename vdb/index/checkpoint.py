"""Index checkpoints: the arena, the graph and the payload columns of one collection in one
file, stamped with the op-log sequence number (LSN) they cover.

File layout:
  8 bytes   magic b"VDBCKPT1"
  u64       length of the JSON header
  JSON      {"lsn", "cid", "meta": index metadata, "arrays": [{name, dtype, shape, offset,
            nbytes, crc32}], "payloads": {offset, nbytes, crc32}}
  ...       each array's bytes at a 64-byte aligned offset, then the pickled payload index

Written to a temporary name, fsynced, then renamed over the old file, so a crash leaves either
the old checkpoint or the new one. Loading memory-maps the arrays copy-on-write after checking
every checksum; anything unexpected returns None and the caller rebuilds from LMDB.
"""

import json
import os
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np

from vdb.index.flat import FlatIndex
from vdb.index.hnsw import HnswIndex

MAGIC = b"VDBCKPT1"
LENGTH = struct.Struct("<Q")
ALIGN = 64
KINDS = {"flat": FlatIndex, "hnsw": HnswIndex}


def path_for(directory: Path, cid: int) -> Path:
    return Path(directory) / f"c{cid}.ckpt"


def save(path: Path, index: FlatIndex, payloads, lsn: int, cid: int) -> None:
    meta, arrays = index.state()
    blob = pickle.dumps(payloads, protocol=5)
    table, offset = [], 0
    for name, arr in arrays.items():
        arr = np.ascontiguousarray(arr)
        arrays[name] = arr
        table.append(
            {
                "name": name,
                "dtype": arr.dtype.str,
                "shape": list(arr.shape),
                "offset": offset,
                "nbytes": arr.nbytes,
                "crc32": zlib.crc32(arr),
            }
        )
        offset += _pad(arr.nbytes)
    header = {
        "lsn": lsn,
        "cid": cid,
        "meta": meta,
        "arrays": table,
        "payloads": {"offset": offset, "nbytes": len(blob), "crc32": zlib.crc32(blob)},
    }
    head = json.dumps(header).encode()
    base = _pad(len(MAGIC) + LENGTH.size + len(head))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(MAGIC + LENGTH.pack(len(head)) + head)
            fh.write(b"\0" * (base - fh.tell()))
            for entry in table:
                fh.write(arrays[entry["name"]].reshape(-1).view(np.uint8))
                fh.write(b"\0" * (_pad(entry["nbytes"]) - entry["nbytes"]))
            fh.write(blob)
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


def load(path: Path, cid: int, dim: int, metric: str):
    """(index, payloads, lsn) from a checkpoint, or None when it is missing or not sound."""
    try:
        with open(path, "rb") as fh:
            if fh.read(len(MAGIC)) != MAGIC:
                return None
            (length,) = LENGTH.unpack(fh.read(LENGTH.size))
            header = json.loads(fh.read(length))
        base = _pad(len(MAGIC) + LENGTH.size + length)
        meta = header["meta"]
        if (header["cid"], meta["dim"], meta["metric"]) != (cid, dim, metric):
            return None
        size = path.stat().st_size
        arrays = {}
        for entry in header["arrays"]:
            start = base + entry["offset"]
            if start + entry["nbytes"] > size:
                return None
            arr = (
                np.memmap(
                    path,
                    dtype=np.dtype(entry["dtype"]),
                    mode="c",
                    offset=start,
                    shape=tuple(entry["shape"]),
                )
                if entry["nbytes"]
                else np.zeros(entry["shape"], np.dtype(entry["dtype"]))
            )
            arr = np.asarray(arr)
            if zlib.crc32(arr) != entry["crc32"]:
                return None
            arrays[entry["name"]] = arr
        p = header["payloads"]
        with open(path, "rb") as fh:
            fh.seek(base + p["offset"])
            blob = fh.read(p["nbytes"])
        if len(blob) != p["nbytes"] or zlib.crc32(blob) != p["crc32"]:
            return None
        payloads = pickle.loads(blob)
        index = KINDS[meta["kind"]].restore(meta, arrays)
        return index, payloads, header["lsn"]
    except Exception:  # any surprise (damage, a file from another version): rebuild instead
        return None


def remove(directory: Path, cid: int) -> None:
    """Delete a collection's checkpoint and any temporary files left by a crash."""
    for stale in Path(directory).glob(f"c{cid}.ckpt*"):
        stale.unlink(missing_ok=True)


def _pad(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN
