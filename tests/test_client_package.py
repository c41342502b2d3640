"""The typed client is installable on its own (`pip install ./clients/python`): its wheel holds
the generated stubs and the client, and declares what they need."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_client_builds_as_its_own_wheel(tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(ROOT / "clients" / "python", source, ignore=shutil.ignore_patterns("*.pyc"))
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"]
    subprocess.run(
        [*pip_wheel, "--no-build-isolation", "-w", str(tmp_path / "dist"), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("ccl_client-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in (
        "ccl_client/client.py",
        "ccl_client/aio.py",
        "ccl_client/errors.py",
        "ccl_client/importer.py",
        "ccl/lead/v1/lead_service_pb2_grpc.py",
        "ccl/dealer/v1/dealer_service_pb2_grpc.py",
    ):
        assert module in names, module
    assert not [n for n in names if n.startswith("server/")], "no server code in the client"
    metadata = next(n for n in names if n.endswith("METADATA"))
    requires = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "Requires-Dist: grpcio" in requires and "Requires-Dist: grpcio-status" in requires
