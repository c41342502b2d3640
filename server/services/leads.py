"""Lead intake and reads: validation, idempotent storage, dealer isolation.

The pipeline agents (VisitorIdentifier, CreditCheck, LeadPackaging) are not
wired in yet; a processed lead is validated, stored with its consent evidence
and logged as `received`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

from server.domain.leads import (
    ActivityRecord,
    LeadFilter,
    LeadInput,
    LeadRecord,
    Page,
    PageResult,
    ProcessResult,
)
from server.services.auth import Principal, Role
from server.services.validation import validate_idempotency_key, validate_lead
from server.storage.db import Database
from server.storage.leads import LeadRepository
from server.storage.pagination import page_size


def request_fingerprint(lead: LeadInput) -> str:
    """A stable hash of a submission, to tell a retry from a different request."""
    canonical = json.dumps(dataclasses.asdict(lead), sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _dealer_restriction(principal: Principal) -> str | None:
    return principal.dealer_id if principal.role is Role.DEALER else None


class LeadService:
    def __init__(self, db: Database, repository: LeadRepository, region: str = "US") -> None:
        self._db = db
        self._repo = repository
        self._region = region

    async def process(
        self, principal: Principal, idempotency_key: str, lead: LeadInput | None
    ) -> ProcessResult:
        """Validates and stores one lead; a repeated idempotency key returns the first result."""
        key = validate_idempotency_key(idempotency_key)
        valid = validate_lead(lead, region=self._region)
        assert lead is not None
        stored = await self._db.run(
            self._repo.create,
            valid,
            scope=principal.scope,
            idempotency_key=key,
            request_hash=request_fingerprint(lead),
            source_dealer_id=_dealer_restriction(principal),
        )
        record = stored.lead
        if record is None:  # a replay: read the lead back
            record = await self._db.run(self._repo.get, stored.lead_id)
        return ProcessResult(
            lead=record,
            outcome=stored.outcome,
            idempotent_replay=stored.replay,
            returning_applicant=stored.returning_applicant,
        )

    async def get(self, principal: Principal, lead_id: str) -> LeadRecord:
        return await self._db.run(self._repo.get, lead_id, _dealer_restriction(principal))

    async def list(
        self, principal: Principal, flt: LeadFilter, size: int, token: str
    ) -> PageResult[LeadRecord]:
        page = Page(size=page_size(size, 50), token=token)
        return await self._db.run(self._repo.list, flt, page, _dealer_restriction(principal))

    async def list_activity(
        self, principal: Principal, lead_id: str, size: int, token: str
    ) -> PageResult[ActivityRecord]:
        page = Page(size=page_size(size, 100), token=token)
        return await self._db.run(
            self._repo.list_activity, lead_id, page, _dealer_restriction(principal)
        )
