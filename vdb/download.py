"""Resumable HTTP(S) downloads into an open partial file, with a progress bar.

fetch() appends to a file opened for appending. When the file already holds bytes it asks
for the rest with a Range request: a server that answers 206 from that offset is appended
to; one that answers 200 (it ignores Range) restarts the file from byte 0, as does a 416
(the file is not a prefix of what the server has). The sha256 and CRC-32 of the whole file
are computed as the bytes arrive, after reading those already there. A dropped connection
leaves what arrived in the file for the next attempt, which resumes from it.

Only the standard library speaks HTTP (urllib: proxies from the environment, redirects);
tqdm draws the bar (size, speed, time left) on stderr.
"""

import hashlib
import http.client
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
import zlib

from tqdm import tqdm

from vdb._version import __version__
from vdb.errors import DownloadError, NotAModelError, shown

CHUNK = 1 << 20  # bytes per read
TIMEOUT = 60.0  # seconds a connection may stay silent before it counts as lost
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class Digest:
    """The sha256, CRC-32 and length of a byte stream, updated piece by piece."""

    def __init__(self):
        self._sha = hashlib.sha256()
        self.crc32 = 0
        self.size = 0

    def update(self, data: bytes) -> None:
        self._sha.update(data)
        self.crc32 = zlib.crc32(data, self.crc32)
        self.size += len(data)

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    @classmethod
    def of(cls, fh, limit: int | None = None) -> "Digest":
        """The digest of an open binary file's first limit bytes (all when None)."""
        digest = cls()
        fh.seek(0)
        left = limit
        while left is None or left > 0:
            data = fh.read(CHUNK if left is None else min(CHUNK, left))
            if not data:
                break
            digest.update(data)
            if left is not None:
                left -= len(data)
        return digest


def megabytes(n: int | None) -> str:
    return "an unknown size" if n is None else f"{n / 1e6:.1f} MB"


def progress_bar(total: int | None, initial: int, label: str, enabled: bool) -> tqdm:
    """A byte counter on stderr: size, speed and time left."""
    return tqdm(
        total=total,
        initial=initial,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=label,
        file=sys.stderr,
        disable=not enabled,
        dynamic_ncols=True,
    )


def fetch(
    url: str,
    fh,
    label: str,
    headers: dict | None = None,
    progress: bool = True,
    magic: bytes = b"",
) -> Digest:
    """Download url into fh (a binary file opened with 'a+b'), resuming after the bytes it
    holds. headers: sent to url's host only (not across redirects), e.g. a token. magic: the
    bytes the file must begin with; anything else is refused at the first bytes
    (NotAModelError). Returns the whole file's digest; DownloadError when the server refuses,
    cannot be reached, or the connection drops (fh keeps what arrived)."""
    have = os.fstat(fh.fileno()).st_size
    if have and magic and not _starts(fh, magic):
        have = 0  # not even the beginning is right: start over
    response = _open(url, have, headers) if have else None
    if response is None:
        have = 0
        response = _open(url, 0, headers)
    with response:
        start, total = _extent(url, response, have)
        if start == 0:
            fh.truncate(0)
            digest = Digest()
        else:
            digest = Digest.of(fh, start)
        with progress_bar(total, start, label, progress) as bar:
            try:
                _copy(url, response, fh, digest, bar, magic)
            finally:
                fh.flush()
                os.fsync(fh.fileno())
    if total is not None and digest.size != total:
        short = digest.size < total
        why = "the connection dropped" if short else "the server sent more than it announced"
        raise _lost(url, digest.size, total, why)
    return digest


def _starts(fh, magic: bytes) -> bool:
    fh.seek(0)
    return fh.read(len(magic)) == magic


def _open(url: str, start: int, headers: dict | None):
    """The server's response to a GET of url from byte start, or None for a 416 to a range
    request (the partial file is not a prefix of the server's file)."""
    request = urllib.request.Request(
        url, headers={"User-Agent": f"vdb/{__version__}", "Accept-Encoding": "identity"}
    )
    if start:
        request.add_header("Range", f"bytes={start}-")
    for key, value in (headers or {}).items():
        request.add_unredirected_header(key, value)
    try:
        return urllib.request.urlopen(request, timeout=TIMEOUT)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and start:
            return None
        raise DownloadError(f"{shown(url, 200)} answered HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise DownloadError(
            f"cannot reach {shown(url, 200)}: {shown(str(exc.reason), 200)}"
        ) from None
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise DownloadError(f"cannot download {shown(url, 200)}: {shown(str(exc), 200)}") from None


def _extent(url: str, response, have: int) -> tuple[int, int | None]:
    """(the offset the response's body starts at, the whole file's size or None)."""
    if response.status == 206:
        match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
        if not match or int(match[1]) != have:
            raise DownloadError(
                f"{shown(url, 200)} answered a request for bytes from {have} with "
                f"Content-Range {shown(response.headers.get('Content-Range'))}"
            )
        return have, None if match[3] == "*" else int(match[3])
    if response.status != 200:
        raise DownloadError(f"{shown(url, 200)} answered HTTP {response.status}")
    length = response.headers.get("Content-Length")
    return 0, int(length) if length and length.isdigit() else None


def _copy(url: str, response, fh, digest: Digest, bar, magic: bytes) -> None:
    """Append the response's body to fh, checking that the file begins with magic."""
    head = b""
    while True:
        try:
            data = response.read(CHUNK)
        except http.client.IncompleteRead as exc:
            _write(fh, exc.partial, digest, bar)
            raise _lost(url, digest.size, bar.total, "the connection dropped") from None
        except (OSError, http.client.HTTPException) as exc:
            raise _lost(url, digest.size, bar.total, shown(str(exc), 100)) from None
        if not data:
            return
        if digest.size < len(magic):
            head = (head + data)[: len(magic)]
            seen = len(head)
            if head != magic[:seen]:
                kind = response.headers.get("Content-Type", "unknown")
                raise NotAModelError(
                    f"{shown(url, 200)} is not a GGUF file: it begins {shown(data[:32])} "
                    f"(Content-Type {shown(kind)})"
                )
        _write(fh, data, digest, bar)


def _write(fh, data: bytes, digest: Digest, bar) -> None:
    fh.write(data)
    digest.update(data)
    bar.update(len(data))


def _lost(url: str, size: int, total: int | None, why: str) -> DownloadError:
    host = urllib.parse.urlsplit(url).netloc or url
    return DownloadError(
        f"{why} after {megabytes(size)} of {megabytes(total)} from {shown(host, 100)}; what "
        "arrived is kept: pull again to resume"
    )
