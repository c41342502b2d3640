"""Set-based intake (issue 9): a batch of leads decided at once by `resolve_leads` ends exactly as
the same leads stored one by one with `resolve_lead` — identities, identifiers, visitors,
duplicates, activity and idempotency replays — on SQLite and PostgreSQL, also when a concurrent
transaction makes the set-based inserts conflict."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import uuid
from typing import Any

from server.agents.visitor_identifier.agent import VisitorIdentifier, clean_phone
from server.app import Application
from server.domain.identity import Identifier
from server.domain.leads import LeadOutcome, Resolution, ValidLead
from server.domain.validation import validate_lead
from server.errors import CclError
from server.storage import models as m
from server.storage.identities import IdentityRepository, IntakeLookup
from server.storage.leads import LeadRepository, PipelineLease, StoredResult
from server.storage.pipeline import PipelineRepository
from server.transport.converters import lead_input
from support.data import example_message

_phones = itertools.count(2000)


class World:
    """One run of the scenario, its values tagged so that runs share a database unseen."""

    def __init__(self, application: Application, identities: IdentityRepository | None = None):
        self.app = application
        self.tag = uuid.uuid4().hex[:8]
        self.vi = VisitorIdentifier(
            region="US", lookback_days=30, max_emails=2, max_phones=2, identities=identities
        )
        self._phones: dict[str, str] = {}
        self.labels: dict[str, str] = {}

    def email(self, name: str) -> str:
        return f"{name}.{self.tag}@example.com"

    def phone(self, name: str) -> str:
        if name not in self._phones:
            n = next(_phones)
            self._phones[name] = f"(312) 555-{n:04d}"
        return self._phones[name]

    def visitor(self, name: str) -> str:
        return f"{name}-{self.tag}"

    def lead(self, name: str, *, email: str = "", phone: str = "", visitor: str = "") -> ValidLead:
        message = example_message(
            email=email or self.email(name),
            phone=self.phone(phone or name),
            visitor_id=self.visitor(visitor) if visitor else None,
        )
        return validate_lead(lead_input(message.lead))

    def store_alone(self, label: str, lead: ValidLead) -> StoredResult:
        stored = LeadRepository(self.app.db).create(
            lead,
            scope="internal",
            idempotency_key="",
            request_hash="h",
            source_dealer_id=None,
            resolve=self.vi.resolve_lead,
        )
        self.labels[stored.lead_id] = label
        self.labels.setdefault(stored.identity.identity_id, f"identity of {label}")
        return stored

    def setup(self) -> None:
        """Earlier leads and visitors the batch meets."""
        self.store_alone("a", self.lead("a"))
        self.store_alone("v", self.lead("v", visitor="v-with-identity"))
        with self.app.db.transaction():
            IdentityRepository().visitor(self.visitor("v-without-identity"), m.utcnow())
        # Three emails on one phone: the third is over the cap of 2, so it belongs to no one,
        # but a lead with it is recent.
        for name in ("c1", "c2", "c3"):
            self.store_alone(name, self.lead(name, phone="c"))

    def batch(self) -> list[tuple[ValidLead, str, str]]:
        lead = self.lead
        leads = [
            lead("n0"),  # 0: a new person
            lead("n1", email=self.email("a")),  # 1: returning by email
            lead("n2", email=self.email("n0")),  # 2: the same email as 0: a duplicate of it
            lead("n3", visitor="v-without-identity"),  # 3: a known visitor, no identity yet
            lead("n4", visitor="v-new"),  # 4: a visitor seen for the first time
            lead("n5", visitor="v-with-identity"),  # 5: a visitor with an identity
            lead("n6", visitor="v-new"),  # 6: the visitor of 4 again
            lead("n7", email="test@test.com"),  # 7: a junk email
            lead("n8", email=self.email("c3")),  # 8: a recent lead's email nobody owns
        ]
        items = [(v, f"k{i}-{self.tag}", f"h{i}") for i, v in enumerate(leads)]
        items.append((leads[0], f"k0-{self.tag}", "h0"))  # 9: item 0's key again: a replay
        items.append((leads[1], f"k1-{self.tag}", "other"))  # 10: item 1's key, another request
        return items

    def run(self, *, batched: bool) -> list[StoredResult | CclError]:
        self.setup()
        lease = PipelineLease(uuid.uuid4().hex, m.utcnow() + dt.timedelta(minutes=1))
        return PipelineRepository(self.app.db).intake_batch(
            LeadRepository(self.app.db),
            self.batch(),
            scope="internal",
            source_dealer_id=None,
            resolve=self.vi.resolve_lead,
            resolve_batch=self.vi.resolve_leads if batched else None,
            lease=lease,
        )

    def canonical(self, results: list[StoredResult | CclError]) -> list[Any]:
        """The results with ids replaced by labels, and what the database holds of each lead:
        comparable between runs."""
        for i, r in enumerate(results):
            if isinstance(r, StoredResult) and not r.replay:
                self.labels.setdefault(r.lead_id, f"lead {i}")
                self.labels.setdefault(r.identity.identity_id, f"identity of lead {i}")

        def label(value: str | None) -> str | None:
            return None if not value else self.labels.get(value, "unknown")

        out: list[Any] = []
        for r in results:
            if isinstance(r, CclError):
                out.append(("error", r.reason))
                continue
            row = m.Lead.get_by_id(r.lead_id)
            assert r.identity.visitor_id == (row.visitor_id or "")
            visitor = m.Visitor.get_or_none(m.Visitor.id == row.visitor_id)
            phones = {clean_phone(raw, "US"): name for name, raw in self._phones.items()}
            identifiers = sorted(
                (i.kind, phones.get(i.value) or i.value.replace(self.tag, "*"))
                for i in m.IdentityIdentifier.select().where(
                    m.IdentityIdentifier.identity == row.identity_id
                )
            )
            activity = [
                a.kind
                for a in m.Activity.select()
                .where(m.Activity.lead == r.lead_id)
                .order_by(m.Activity.id)
            ]
            out.append(
                {
                    "lead": label(r.lead_id),
                    "outcome": r.outcome,
                    "replay": r.replay,
                    "identity": dataclasses.replace(
                        r.identity,
                        identity_id=label(r.identity.identity_id) or "",
                        visitor_id="",  # compared as "visitor" below
                    ),
                    "returning": r.returning_applicant,
                    "row identity": label(row.identity_id),
                    "duplicate of": label(row.duplicate_of_id),
                    "visitor": visitor.anonymous_id.replace(self.tag, "*") if visitor else None,
                    "visitor identity": label(visitor.identity_id) if visitor else None,
                    "identifiers": identifiers,
                    "activity": activity,
                }
            )
        return out


def test_a_batch_ends_as_one_by_one(application: Application) -> None:
    one_by_one = World(application)
    expected = one_by_one.canonical(one_by_one.run(batched=False))
    batched = World(application)
    seen: list[list[Resolution | None]] = []
    resolve_leads = batched.vi.resolve_leads

    def spy(leads: list[ValidLead], now: dt.datetime) -> list[Resolution | None]:
        seen.append(resolve_leads(leads, now))
        return seen[-1]

    batched.vi.resolve_leads = spy  # type: ignore[method-assign]
    got = batched.canonical(batched.run(batched=True))

    assert got == expected
    # Decided at once: the new people; alone: the returning applicant (1), those sharing an
    # email (2) or a visitor (6) with an earlier lead of the batch, the visitor with an
    # identity (5). The repeated keys (9, 10) never reach the resolver.
    assert [r is not None for r in seen[0]] == [
        True, False, False, True, True, False, False, True, True,
    ]  # fmt: skip
    # What one by one gives, spelled out.
    assert got[1]["identity"].identity_id == "identity of a" and got[1]["returning"]
    assert got[2]["outcome"] is LeadOutcome.DUPLICATE and got[2]["duplicate of"] == "lead 0"
    assert got[2]["row identity"] == "identity of lead 0"
    assert got[3]["visitor identity"] == "identity of lead 3"
    assert got[4]["visitor identity"] == "identity of lead 4"
    assert got[5]["row identity"] == "identity of v" and got[5]["returning"]
    assert got[6]["row identity"] == "identity of lead 4"
    assert [kind for kind, _ in got[7]["identifiers"]] == ["phone"]
    assert got[8]["outcome"] is LeadOutcome.DUPLICATE and got[8]["duplicate of"] == "c1"
    assert got[9]["replay"] and got[9]["lead"] == "lead 0"
    assert got[10] == ("error", "IDEMPOTENCY_KEY_REUSED")


class _Stale(IdentityRepository):
    """A lookup read just before another transaction linked "a"'s email: it sees no owner."""

    def lookup(self, identifiers: Any, anonymous_ids: Any, since: dt.datetime) -> IntakeLookup:
        found = super().lookup(identifiers, anonymous_ids, since)
        owners: dict[Identifier, str] = {
            v: owner for v, owner in found.owners.items() if not v[1].startswith("a.")
        }
        return dataclasses.replace(found, owners=owners)


def test_a_conflicting_batch_is_undone_and_stored_one_by_one(application: Application) -> None:
    one_by_one = World(application)
    expected = one_by_one.canonical(one_by_one.run(batched=False))
    racing = World(application, identities=_Stale())
    assert racing.canonical(racing.run(batched=True)) == expected


def test_one_lead_alone_takes_the_set_based_path_and_survives_a_conflict(
    application: Application,
) -> None:
    """A batch of one goes set-based too; a conflict (the identifier linked meanwhile) rolls
    its transaction back and stores it alone, matched to the identity that won."""
    world = World(application, identities=_Stale())
    world.setup()
    lease = PipelineLease(uuid.uuid4().hex, m.utcnow() + dt.timedelta(minutes=1))
    returning = world.lead("again", email=world.email("a"))
    (stored,) = PipelineRepository(application.db).intake_batch(
        LeadRepository(application.db),
        [(returning, f"again-{world.tag}", "h")],
        scope="internal",
        source_dealer_id=None,
        resolve=world.vi.resolve_lead,
        resolve_batch=world.vi.resolve_leads,
        lease=lease,
    )
    assert isinstance(stored, StoredResult) and not stored.replay
    assert world.labels[stored.identity.identity_id] == "identity of a"
    assert stored.returning_applicant and stored.identity.matched_by == "email"
