"""Runs a Markdown guide's examples: its fenced blocks, in order, as a reader would.

The convention (what `docs/dealers.md` follows), by each fenced block's info string:

- ```` ```sh ````: run with `bash -euo pipefail` in a working directory shared by every block.
  Variables a block `export`s carry over to the blocks after it, as in a reader's terminal.
- ```` ```python ````: run with the test's Python (the project's venv), same directory and
  environment.
- ```` ```python file=NAME ````: written to NAME in the working directory, not run on its own
  (a later block imports or runs it), as a reader would save it.
- ```` ```json response ```` (optionally `http=NNN`): the output of the runnable block before it.
  The real output must parse as JSON (after a last line holding the HTTP status, when `http=`
  is given, which must match) and have the sample's shape: see `shape_errors`.
- ```` ```json package ```` / ```` ```xml package ````: a delivery body we send; compared with a
  real delivery by the test.
- ```` ```text ````: not code (a formula, a table drawn in text); not run.

Any other info string is an error, so no example is skipped by accident. An HTML comment
`<!-- guide-test: NAME -->` between blocks is a step the test takes at that point for the
reader (for example: save the delivery the reader's endpoint received).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
_DIRECTIVE = re.compile(r"<!--\s*guide-test:\s*([a-z0-9-]+)\s*-->")
KNOWN = {"sh", "python", "json", "xml", "text"}
# A proto enum value's name (compared exactly), and an UPPER_SNAKE reason opening a message.
_ENUM = re.compile(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)+")
_REASON_PREFIX = re.compile(r"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+): ")
ELLIPSIS = "..."


@dataclass(frozen=True)
class Block:
    """A fenced block (`lang` and its `attrs`) or, when `directive` is set, a test step."""

    lang: str
    attrs: dict[str, str]
    code: str
    line: int
    directive: str = ""

    @property
    def runnable(self) -> bool:
        return self.lang in ("sh", "python") and "file" not in self.attrs

    def __str__(self) -> str:
        return self.directive or f"```{self.lang} block at line {self.line}"


def parse(markdown: str) -> list[Block]:
    """The fenced blocks and guide-test directives, in document order."""
    found: list[tuple[int, Block]] = []
    for m in _FENCE.finditer(markdown):
        info = m.group(1).split()
        lang = info[0] if info else ""
        attrs = {a.partition("=")[0]: a.partition("=")[2] for a in info[1:]}
        line = markdown.count("\n", 0, m.start()) + 1
        found.append((m.start(), Block(lang, attrs, m.group(2), line)))
    fences = [(m.start(), m.end()) for m in _FENCE.finditer(markdown)]
    for m in _DIRECTIVE.finditer(markdown):
        if not any(a <= m.start() < b for a, b in fences):
            line = markdown.count("\n", 0, m.start()) + 1
            found.append((m.start(), Block("", {}, "", line, directive=m.group(1))))
    return [b for _, b in sorted(found, key=lambda f: f[0])]


def unknown_blocks(blocks: list[Block]) -> list[str]:
    """Blocks whose info string is not in the convention."""
    bad = []
    for b in blocks:
        if b.directive:
            continue
        role = next(iter(b.attrs), "")
        if b.lang not in KNOWN:
            bad.append(f"line {b.line}: ```{b.lang}")
        elif b.lang == "json" and role not in ("response", "package"):
            bad.append(f"line {b.line}: ```json needs `response` or `package`")
        elif b.lang == "xml" and role != "package":
            bad.append(f"line {b.line}: ```xml needs `package`")
    return bad


@dataclass
class Runner:
    """Runs blocks in `workdir` with `env`, carrying exported shell variables forward."""

    workdir: Path
    env: dict[str, str]
    timeout: float = 90
    outputs: list[str] = field(default_factory=list)

    def run(self, block: Block) -> subprocess.CompletedProcess[str]:
        if block.lang == "sh":
            dump = self.workdir / ".guide-env"
            script = self.workdir / ".guide-block.sh"
            script.write_text(f'{block.code}\nenv -0 > "{dump}"\n')
            result = self._run(["bash", "-euo", "pipefail", str(script)])
            if result.returncode == 0 and dump.exists():
                pairs = dump.read_bytes().decode().split("\0")
                self.env = dict(p.split("=", 1) for p in pairs if "=" in p)
                dump.unlink()
        else:
            script = self.workdir / ".guide-block.py"
            script.write_text(block.code)
            result = self._run([sys.executable, str(script)])
        self.outputs.append(result.stdout)
        return result

    def save(self, block: Block) -> None:
        (self.workdir / block.attrs["file"]).write_text(block.code)

    def _run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv,
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=self.timeout,
            check=False,
        )


def base_env(**values: str) -> dict[str, str]:
    """A reader's environment: PATH (the venv's bin first), HOME, and `values`."""
    venv_bin = str(Path(sys.executable).parent)
    return {
        "PATH": f"{venv_bin}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        **values,
    }


def response_of(output: str, http: str = "") -> Any:
    """The JSON a block printed; with `http`, its last line must be that status."""
    text = output.strip()
    if http:
        body, _, status = text.rpartition("\n")
        if status.strip() != http:
            raise AssertionError(f"HTTP status {status.strip()!r}, the guide shows {http}")
        text = body
    return json.loads(text)


def shape_errors(sample: Any, real: Any, path: str = "$") -> list[str]:
    """How `real` differs in shape from the guide's `sample`.

    Objects have the same keys, unless the sample holds `"...": "..."` (abbreviated: its keys
    are a subset). Lists have as many items, unless the sample's last item is `"..."` (at least
    the others); items are compared in order. An enum name (`LEAD_STATUS_DELIVERED`) and a
    boolean must be equal; a message starting with a reason (`REASON_REQUIRED: ...`) must start
    with the same reason; other strings and numbers only have the same type; `null` in the
    sample stands for any value."""
    if sample is None:
        return []
    if isinstance(sample, dict):
        if not isinstance(real, dict):
            return [f"{path}: an object in the guide, {type(real).__name__} in reality"]
        errors = []
        keys = set(sample) - {ELLIPSIS}
        missing, extra = keys - set(real), set(real) - keys
        if missing:
            errors.append(f"{path}: keys {sorted(missing)} shown but not returned")
        if extra and ELLIPSIS not in sample:
            errors.append(f"{path}: keys {sorted(extra)} returned but not shown (or add '...')")
        for k in sorted(keys & set(real)):
            errors += shape_errors(sample[k], real[k], f"{path}.{k}")
        return errors
    if isinstance(sample, list):
        if not isinstance(real, list):
            return [f"{path}: a list in the guide, {type(real).__name__} in reality"]
        open_ended = bool(sample) and sample[-1] == ELLIPSIS
        items = sample[:-1] if open_ended else sample
        if len(real) < len(items) or (not open_ended and len(real) != len(items)):
            return [f"{path}: {len(items)} items shown, {len(real)} returned"]
        errors = []
        for i, item in enumerate(items):
            errors += shape_errors(item, real[i], f"{path}[{i}]")
        return errors
    if isinstance(sample, bool):
        return [] if real is sample else [f"{path}: {sample} shown, {real!r} returned"]
    if isinstance(sample, int | float):
        ok = isinstance(real, int | float) and not isinstance(real, bool)
        return [] if ok else [f"{path}: a number shown, {real!r} returned"]
    if isinstance(sample, str):
        if not isinstance(real, str):
            return [f"{path}: a string shown, {real!r} returned"]
        if _ENUM.fullmatch(sample) and real != sample:
            return [f"{path}: {sample} shown, {real} returned"]
        prefix = _REASON_PREFIX.match(sample)
        if prefix and not real.startswith(prefix.group(0)):
            return [f"{path}: {prefix.group(1)} shown, {real!r} returned"]
        return []
    return [f"{path}: unexpected sample value {sample!r}"]


def xml_paths(text: str) -> set[str]:
    """The element paths (with attribute names) of an XML document, for comparing shapes."""
    from lxml import etree

    root = etree.fromstring(text.encode())
    paths: set[str] = set()
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        names = [a.tag for a in reversed(list(el.iterancestors()))] + [el.tag]
        attrs = ",".join(sorted(str(a) for a in el.attrib))
        paths.add("/".join(names) + (f"[{attrs}]" if attrs else ""))
    return paths
