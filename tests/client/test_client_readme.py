"""Every Python example of the client's README (`clients/python/README.md`) runs as written,
in a fresh interpreter, against a live server, directly and through Envoy."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from support.stack import EnvoyProcess, ServerThread

README = Path(__file__).resolve().parents[2] / "clients" / "python" / "README.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
EXAMPLES = _BLOCK.findall(README.read_text(encoding="utf-8"))


def test_the_readme_has_examples() -> None:
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize("via", ["server", "envoy"])
@pytest.mark.parametrize("index", range(len(EXAMPLES)))
def test_example_runs_as_written(
    index: int, via: str, stack: ServerThread, envoy_proxy: EnvoyProcess, admin_key: str
) -> None:
    target = stack.address if via == "server" else f"127.0.0.1:{envoy_proxy.http_port}"
    env = {**os.environ, "CCL_TARGET": target, "CCL_API_KEY": admin_key}
    done = subprocess.run(
        [sys.executable, "-c", EXAMPLES[index]],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip(), "every example prints what it got"
