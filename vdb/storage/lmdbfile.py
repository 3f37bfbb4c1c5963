"""A check of an LMDB data file before LMDB maps it.

LMDB memory-maps data.mdb and trusts it: a file cut shorter than the pages its header
names makes the first read of a missing page kill the process with SIGBUS. So before
opening, read the two meta pages with plain file reads and check that the file holds every
page the newest valid one says is in use.

Meta page layout (LMDB 0.9, little-endian, 64-bit): a 16-byte page header, then
  u32 magic 0xBEEFC0DE, u32 version 1, u64 address, u64 map size,
  2 x MDB_db (u32 pad = page size in the first, u16 flags, u16 depth, u64 branch pages,
  u64 leaf pages, u64 overflow pages, u64 entries, u64 root), u64 last page, u64 txn id.
"""

import os
import struct
from dataclasses import dataclass
from pathlib import Path

from vdb.errors import DataCorruptedError

MAGIC = 0xBEEFC0DE
VERSION = 1
PAGE_HEADER = 16
META = struct.Struct("<IIQQ")  # magic, version, address, map size
DB = struct.Struct("<IHHQQQQQ")  # pad, flags, depth, branch, leaf, overflow, entries, root
TAIL = struct.Struct("<QQ")  # last page, txn id
META_SIZE = META.size + 2 * DB.size + TAIL.size


@dataclass(frozen=True)
class Meta:
    page_size: int
    last_page: int
    txn_id: int
    map_size: int

    @property
    def needed_bytes(self) -> int:
        return (self.last_page + 1) * self.page_size


def _meta(raw: bytes) -> Meta | None:
    if len(raw) < PAGE_HEADER + META_SIZE:
        return None
    magic, version, _, map_size = META.unpack_from(raw, PAGE_HEADER)
    page_size = DB.unpack_from(raw, PAGE_HEADER + META.size)[0]
    last_page, txn_id = TAIL.unpack_from(raw, PAGE_HEADER + META.size + 2 * DB.size)
    if magic != MAGIC or version != VERSION or page_size < 512 or page_size & (page_size - 1):
        return None
    return Meta(page_size, last_page, txn_id, map_size)


def check(path) -> Meta | None:
    """The newest sound meta page of DIR/data.mdb (None when the file does not exist), or
    DataCorruptedError when the file is empty, has no sound meta page, or is shorter than
    the pages in use."""
    path = Path(path) / "data.mdb"
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        size = os.fstat(fd).st_size
        first = os.pread(fd, 4096, 0)
        metas = [_meta(first)]
        if metas[0] is not None:
            metas.append(_meta(os.pread(fd, 4096, metas[0].page_size)))
        else:  # the first page is damaged: look for the second at the usual page sizes
            metas += [_meta(os.pread(fd, 4096, ps)) for ps in (4096, 8192, 16384, 65536)]
    finally:
        os.close(fd)
    sound = [m for m in metas if m is not None]
    if size == 0:
        raise DataCorruptedError(
            f"{str(path)!r} is empty: the database was truncated, or its creation never finished"
        )
    if not sound:
        raise DataCorruptedError(f"{str(path)!r} has no sound LMDB header: not a vdb database")
    meta = max(sound, key=lambda m: m.txn_id)
    if size < meta.needed_bytes:
        raise DataCorruptedError(
            f"{str(path)!r} is truncated: {size:,} bytes where its header needs "
            f"{meta.needed_bytes:,} ({meta.last_page + 1:,} pages of {meta.page_size})"
        )
    return meta
