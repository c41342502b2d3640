"""The README stays true: every setting is in its configuration table, every dependency is
explained, and the documented REST paths exist in the contract."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from google.api import annotations_pb2
from google.protobuf import descriptor_pool

from server.settings import Settings
from server.transport.server import SERVICE_NAMES

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    for name in Settings.model_fields:
        env = "DATABASE_URL" if name == "database_url" else f"CCL_{name.upper()}"
        assert f"| `{env}` |" in README, f"{env} missing from the README configuration table"


def test_every_dependency_is_explained() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + project["optional-dependencies"]["dev"]
    for dep in deps:
        name = re.split(r"[<>=\[ ]", dep, maxsplit=1)[0]
        assert f"`{name}`" in README, f"{name} is not in the README's dependency table"


def test_the_five_documented_paths_are_in_the_contract() -> None:
    pool = descriptor_pool.Default()
    routes = set()
    for service in SERVICE_NAMES:
        for method in pool.FindServiceByName(service).methods:
            rule = method.GetOptions().Extensions[annotations_pb2.http]
            for verb in ("get", "post"):
                if getattr(rule, verb):
                    routes.add(f"{verb.upper()} {getattr(rule, verb)}")
    for path in (
        "POST /api/leads/process",
        "POST /api/email-campaigns/bulk-send",
        "POST /api/webhook/dealer-leads",
        "GET /api/system/stats",
        "GET /api/agents/status",
    ):
        assert path in routes
        assert f"`{path}`" in README
