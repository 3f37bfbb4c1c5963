"""Generate the Python code of the vdb.v1 protos into vdb/rpc/_gen/ (committed, so that
installing vdb needs no protoc).

    python proto/generate.py          # regenerate
    python proto/generate.py --check  # exit 1 when the committed code is stale

Needs grpcio-tools (in the `test` extra). The generated modules import each other as
`vdb.v1.*`; they live in `vdb.rpc._gen`, so those imports are rewritten.
"""

import argparse
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
OUT = ROOT / "vdb" / "rpc" / "_gen"
PACKAGE = "vdb/v1"
INIT = '"""Generated from proto/vdb/v1 by proto/generate.py. Do not edit."""\n'


def generate() -> dict[str, str]:
    """File name -> generated text."""
    from grpc_tools import protoc

    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / PACKAGE).glob("*.proto"))
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            *protos,
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        files = {"__init__.py": INIT}
        for path in sorted((Path(tmp) / PACKAGE).iterdir()):
            text = path.read_text()
            text = re.sub(r"^from vdb\.v1 import ", "from vdb.rpc._gen import ", text, flags=re.M)
            files[path.name] = text
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args()
    files = generate()
    existing = {p.name: p.read_text() for p in OUT.glob("*.py*")} if OUT.exists() else {}
    stale = sorted(
        name for name in files.keys() | existing.keys() if files.get(name) != existing.get(name)
    )
    if args.check:
        for name in stale:
            print(f"stale: vdb/rpc/_gen/{name}")
        return 1 if stale else 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name in stale:
        if name in files:
            (OUT / name).write_text(files[name])
        else:
            (OUT / name).unlink()
    print(f"wrote {len(stale)} file(s) into vdb/rpc/_gen/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
