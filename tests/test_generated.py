"""The committed code in vdb/rpc/_gen/ is what proto/generate.py makes from proto/vdb/v1/."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_generated_code_is_current():
    result = subprocess.run(
        [sys.executable, str(ROOT / "proto" / "generate.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, (
        f"{result.stdout}{result.stderr}\nrun `python proto/generate.py` and commit the result"
    )


def test_every_service_is_served():
    """Each service in the protos has a servicer registered by the server."""
    from vdb.rpc._gen import (
        collections_pb2,
        embeddings_pb2,
        generation_pb2,
        memory_pb2,
        points_pb2,
        retrieval_pb2,
        server_pb2,
        snapshots_pb2,
    )
    from vdb.rpc.server import SERVICES

    declared = {
        service.full_name
        for module in (
            collections_pb2,
            points_pb2,
            server_pb2,
            snapshots_pb2,
            embeddings_pb2,
            generation_pb2,
            retrieval_pb2,
            memory_pb2,
        )
        for service in module.DESCRIPTOR.services_by_name.values()
    }
    assert declared == set(SERVICES)


def test_every_proto_names_its_go_and_java_packages():
    import importlib

    for proto in sorted((ROOT / "proto" / "vdb" / "v1").glob("*.proto")):
        module = importlib.import_module(f"vdb.rpc._gen.{proto.stem}_pb2")
        options = module.DESCRIPTOR.GetOptions()
        assert options.go_package == "vdb/v1;vdbv1", module.DESCRIPTOR.name
        assert options.java_package == "vdb.v1" and options.java_multiple_files
        assert options.java_outer_classname.endswith("Proto")
