"""`ccl serve` with the lead pipeline taken away, for `make bench`'s floor series: every
`ProcessLead` is answered with the stored result of the first one, so a call costs gRPC, the
interceptors, the servicer and the converters, and nothing else ("canned"); "validated" also
runs what `Orchestrator.process` does before storage (the idempotency key and lead validation,
the request fingerprint). Usage: canned_server.py canned|validated serve [ccl serve options]."""

from __future__ import annotations

import sys
from typing import Any

from server.agents.orchestrator import agent as orchestrator
from server.cli import main

MODE = sys.argv.pop(1)
if MODE not in ("canned", "validated"):
    raise SystemExit("usage: canned_server.py canned|validated serve ...")

_real = orchestrator.Orchestrator.process
_first: list[Any] = []


async def _process(self: Any, principal: Any, key: str, lead: Any, **kw: Any) -> Any:
    if not _first:
        _first.append(await _real(self, principal, key, lead, **kw))
    if MODE == "validated":
        orchestrator.validate_idempotency_key(key)
        orchestrator.validate_lead(lead, region=self._region)
        orchestrator.request_fingerprint(lead)
    return _first[0]


orchestrator.Orchestrator.process = _process  # type: ignore[method-assign]
sys.exit(main())
