"""`CCL_EVENT_LOOP`: the server's event loop, asyncio's or uvloop's."""

from __future__ import annotations

import asyncio

import pytest

from server.main import run


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_asyncio_is_the_default() -> None:
    assert run(_loop_module()).startswith("asyncio")


def test_uvloop_serves_when_asked() -> None:
    pytest.importorskip("uvloop")  # a dev extra: installed by `make venv`
    assert run(_loop_module(), "uvloop").startswith("uvloop")
