"""CampaignService's request-level use cases that are not the EmailReengagement agent's sending:
email templates (versioned, checked when saved, previewed), Mailgun's event webhook, the
unsubscribe link (one-click POST and the page a browser opens) and suppressions by hand.

Templates: `validate_template` compiles every part and renders it against the sample
recipient before anything is stored, so a template that would fail at send time is refused
when saved (`INVALID_TEMPLATE`, one violation per bad part). An update stores a new version and
never changes an old one (a campaign pins the version it sends).

Mailgun webhook: the body is parsed (`INVALID_WEBHOOK_BODY`), its signature checked against
the signing key in constant time, with its age (15 minutes, 5 ahead for clock skew), before
the database is touched, so forged or stale requests cost no write. Then one transaction
remembers the signature token (a token seen before: `WEBHOOK_REPLAYED`, nothing applied) and
applies the event. REST callers see this method's 400s as 406 (envoy/envoy.yaml.tmpl): Mailgun
does not retry a 406.

Unsubscribe tokens (`server.domain.campaigns.sign_unsubscribe`) name our message id as their
recipient: the address is the message's, checked against the token's keyed digest
(`address_matches`). A bad token, an unknown message and a mismatched address all give the same
`UNSUBSCRIBE_TOKEN_INVALID`, so the answer never tells whether an address is known.

Suppressions: complaints cannot be lifted through the API (mailing someone who reported spam
harms every later campaign's delivery); manual ones, unsubscribes and hard bounces can, by an
admin, with a reason that is logged (never the address).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import html
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from server.domain.campaigns import SuppressionReason, address_matches, verify_unsubscribe
from server.domain.clock import utcnow
from server.domain.email import (
    WEBHOOK_MAX_AGE_SECONDS,
    WEBHOOK_MAX_FUTURE_SECONDS,
    MailgunEventType,
    MailgunWebhook,
    WebhookVerdict,
    parse_webhook,
    scrub_addresses,
    verify_webhook_signature,
)
from server.domain.leads import LeadRecord, Page, PageResult
from server.domain.validation import normalize_email
from server.errors import (
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
    NotFoundError,
    UnauthenticatedError,
)
from server.storage import campaigns as store
from server.storage.campaigns import (
    CampaignRepository,
    NewSuppression,
    SuppressionRecord,
    SuppressionRepository,
    TemplateRecord,
    TemplateRepository,
)
from server.storage.db import Database
from server.storage.dealers import DealerRepository
from server.storage.deliveries import DELIVERY_VARIABLE, DeliveryRepository
from server.storage.leads import LeadRepository

if TYPE_CHECKING:  # jinja2 loads with the templates module: on the first template used
    from server.domain.templates import RecipientContext, RenderedEmail, TemplateSpec

log = logging.getLogger("ccl.campaigns")

TEMPLATE_FIELDS = ("name", "subject", "html_body", "text_body")
MAX_SUPPRESSION_REASON = 500
MAX_TOKEN_CHARS = 512
# Suppressions an admin may lift; complaints never (see the module docstring).
REMOVABLE = frozenset(
    {
        SuppressionReason.MANUAL.value,
        SuppressionReason.UNSUBSCRIBED.value,
        SuppressionReason.HARD_BOUNCE.value,
    }
)


@dataclass(frozen=True)
class Sender:
    """Who the footer names, and where links in emails point."""

    company_name: str
    company_address: str
    public_base_url: str

    def unsubscribe_url(self, token: str) -> str:
        return f"{self.public_base_url.rstrip('/')}/api/unsubscribe/{token}"

    def application_url(self, lead_id: str) -> str:
        return f"{self.public_base_url.rstrip('/')}/apply/resume/{lead_id}"


@dataclass(frozen=True)
class Preview:
    email: RenderedEmail
    template_version: int


def _token_invalid() -> InvalidArgumentError:
    return InvalidArgumentError(
        "the unsubscribe link is not valid", reason="UNSUBSCRIBE_TOKEN_INVALID"
    )


def _not_found(what: str) -> NotFoundError:
    return NotFoundError(f"{what.lower()} not found", reason=f"{what.upper()}_NOT_FOUND")


class CampaignTemplateService:
    """Templates: create, read, list, update (a new version), preview."""

    def __init__(self, db: Database, sender: Sender) -> None:
        self._db = db
        self._templates = TemplateRepository(db)
        self._leads = LeadRepository(db)
        self._sender = sender

    async def create(self, spec: TemplateSpec) -> TemplateRecord:
        from server.domain.templates import validate_template

        await asyncio.to_thread(validate_template, spec)  # up to a second of CPU: off the loop
        return await self._db.run(self._templates.create, spec, utcnow())

    async def get(self, template_id: str, version: int = 0) -> TemplateRecord:
        if version < 0:
            raise _not_found("template")
        return await self._db.run(self._templates.get, template_id, version or None)

    async def list_templates(self, size: int, token: str) -> PageResult[TemplateRecord]:
        return await self._db.run(self._templates.list, Page(size=size, token=token))

    async def update(
        self, template_id: str, given: TemplateSpec, mask: Sequence[str]
    ) -> TemplateRecord:
        paths = [p.strip() for p in mask if p.strip()] or list(TEMPLATE_FIELDS)
        unknown = sorted(set(paths) - set(TEMPLATE_FIELDS))
        if unknown:
            raise InvalidArgumentError(
                "update_mask names fields that cannot be updated",
                reason="INVALID_TEMPLATE",
                violations=[
                    FieldViolation("update_mask", f"{', '.join(unknown)}: not a template field")
                ],
            )
        current = (await self._db.run(self._templates.get, template_id, None)).spec
        changes = {
            "name": given.name,
            "subject": given.subject,
            "html_body": given.html,
            "text_body": given.text,
        }
        fields = {"html_body": "html", "text_body": "text"}
        spec = replace(current, **{fields.get(p, p): changes[p] for p in paths})
        from server.domain.templates import validate_template

        await asyncio.to_thread(validate_template, spec)
        return await self._db.run(self._templates.add_version, template_id, spec, utcnow())

    async def preview(
        self,
        *,
        template_id: str,
        version: int,
        inline: TemplateSpec | None,
        lead_id: str,
    ) -> Preview:
        if template_id:
            record = await self.get(template_id, version)
            spec, rendered_version = record.spec, record.version
        elif inline is not None:
            spec, rendered_version = inline, 0
        else:
            raise InvalidArgumentError(
                "a template_id or a template is required",
                reason="INVALID_TEMPLATE",
                violations=[FieldViolation("template_id", "or template is required")],
            )
        from server.domain.templates import validate_template

        compiled = await asyncio.to_thread(validate_template, spec)
        ctx = await self._context(lead_id) if lead_id else self._sample()
        email = await asyncio.to_thread(compiled.render, ctx)
        return Preview(email=email, template_version=rendered_version)

    def _sample(self) -> RecipientContext:
        from server.domain.templates import sample_context

        return replace(
            sample_context(),
            company_name=self._sender.company_name,
            company_address=self._sender.company_address,
            unsubscribe_url=self._sender.unsubscribe_url("preview"),
        )

    async def _context(self, lead_id: str) -> RecipientContext:
        from server.domain.templates import RecipientContext

        lead, dealer_name = await self._db.run(self._lead_and_dealer, lead_id)
        a = lead.applicant
        v = a.vehicle
        return RecipientContext(
            first_name=a.first_name,
            vehicle_year=v.year if v else 0,
            vehicle_make=v.make if v else "",
            vehicle_model=v.model if v else "",
            dealer_name=dealer_name,
            application_url=self._sender.application_url(lead.lead_id),
            unsubscribe_url=self._sender.unsubscribe_url("preview"),
            company_name=self._sender.company_name,
            company_address=self._sender.company_address,
        )

    def _lead_and_dealer(self, lead_id: str) -> tuple[LeadRecord, str]:
        lead = self._leads.get(lead_id)
        name = ""
        if lead.dealer_id:
            try:
                name = DealerRepository.get(lead.dealer_id).name
            except NotFoundError:
                name = ""
        return lead, name


class MailgunWebhookService:
    """`POST /api/webhook/mailgun`: verified, replay-checked and applied in one transaction."""

    def __init__(self, db: Database, signing_key: str) -> None:
        self._db = db
        self._signing_key = signing_key
        self._campaigns = CampaignRepository(db)
        self._warned = False

    async def receive(self, body: bytes, now: float | None = None) -> bool:
        """True if the event changed something; False for an event that is ours already, of
        no message of ours, or of a kind we do not act on."""
        try:
            webhook = parse_webhook(body)
        except InvalidArgumentError as e:
            raise InvalidArgumentError(
                "the Mailgun webhook body is malformed",
                reason="INVALID_WEBHOOK_BODY",
                violations=e.violations,
            ) from None
        sig = webhook.signature
        if not self._signing_key and not self._warned:
            self._warned = True
            log.warning("a Mailgun webhook was refused: CCL_MAILGUN_WEBHOOK_SIGNING_KEY is not set")
        at = time.time() if now is None else now
        verdict = verify_webhook_signature(
            self._signing_key, sig.timestamp, sig.token, sig.signature, now=at
        )
        self._refuse(verdict)
        applied = await self._db.run_atomic(self._apply, webhook, utcnow())
        log.info(
            "mailgun event",
            extra={"event": webhook.event.type.value, "applied": applied},
        )
        return applied

    @staticmethod
    def _refuse(verdict: WebhookVerdict) -> None:
        if verdict is WebhookVerdict.VALID:
            return
        if verdict is WebhookVerdict.BAD_SIGNATURE:
            raise UnauthenticatedError(
                "the Mailgun webhook signature is not valid", reason="SIGNATURE_INVALID"
            )
        if verdict is WebhookVerdict.MALFORMED:
            raise InvalidArgumentError(
                "the Mailgun webhook's signature fields are malformed",
                reason="INVALID_WEBHOOK_BODY",
                violations=[FieldViolation("signature", "timestamp, token or signature")],
            )
        if verdict is WebhookVerdict.REPLAYED:
            raise FailedPreconditionError(
                "this Mailgun webhook was received before", reason="WEBHOOK_REPLAYED"
            )
        raise FailedPreconditionError(
            "the Mailgun webhook's timestamp is too old or too far ahead", reason="WEBHOOK_STALE"
        )

    async def run_pruner(self, stop: asyncio.Event, interval: float = 600.0) -> None:
        """Forgets signature tokens older than any request still accepted (max age plus the
        future skew), every `interval` seconds, until `stop`."""
        keep = dt.timedelta(seconds=WEBHOOK_MAX_AGE_SECONDS + WEBHOOK_MAX_FUTURE_SECONDS + 60)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
            if stop.is_set():
                return
            try:
                await self._db.run_atomic(store.prune_webhook_tokens, utcnow() - keep)
            except Exception:
                log.exception("pruning Mailgun webhook tokens failed")

    def _apply(self, webhook: MailgunWebhook, now: dt.datetime) -> bool:
        # In one transaction (run_atomic): the token and the event are one unit, so a replay
        # racing its original sees the token only once the event is applied.
        if not store.remember_webhook_token(self._db, webhook.signature.token, now):
            raise FailedPreconditionError(
                "this Mailgun webhook was received before", reason="WEBHOOK_REPLAYED"
            )
        if webhook.event.type is MailgunEventType.UNKNOWN:
            return False
        if webhook.event.user_variables.get(DELIVERY_VARIABLE):
            # An ADF email to a dealer's intake (a lead delivery), not a campaign message.
            return DeliveryRepository(self._db).apply_mailgun_event(webhook.event, now)
        return self._campaigns.apply_event(webhook.event, now)


class UnsubscribeService:
    """The unsubscribe link: the page a browser opens, and the one-click POST."""

    def __init__(self, db: Database, keys: Sequence[bytes], sender: Sender) -> None:
        if not keys:
            raise ValueError("at least one unsubscribe key is needed")
        self._db = db
        self._keys = list(keys)
        self._sender = sender

    async def unsubscribe(self, token: str) -> bool:
        """Suppresses the token's address at once (also when it already was)."""
        claim = verify_unsubscribe(self._keys, token) if len(token) <= MAX_TOKEN_CHARS else None
        if claim is None:
            raise _token_invalid()
        newly = await self._db.run_atomic(self._unsubscribe, claim.recipient_id, claim, utcnow())
        log.info("unsubscribed", extra={"newly_suppressed": newly})
        return True

    def _unsubscribe(self, message_id: str, claim: Any, now: dt.datetime) -> bool:
        found = store.message_recipient(message_id)
        if found is None or not address_matches(self._keys, claim, found[0]):
            raise _token_invalid()
        address, campaign_id = found
        return store.record_unsubscribe(self._db, message_id, address, campaign_id, now)

    async def page(self, token: str) -> str:
        """The confirmation page (HTML). Changes nothing."""
        claim = verify_unsubscribe(self._keys, token) if len(token) <= MAX_TOKEN_CHARS else None
        if claim is None:
            raise _token_invalid()
        found = await self._db.run(store.message_recipient, claim.recipient_id)
        if found is None or not address_matches(self._keys, claim, found[0]):
            raise _token_invalid()
        return unsubscribe_page(self._sender, token)


def unsubscribe_page(sender: Sender, token: str) -> str:
    """One button that posts the RFC 8058 form to the link's own URL. No address is shown (the
    link may have been forwarded), no script, nothing loaded from elsewhere."""
    company = html.escape(sender.company_name)
    action = html.escape(f"/api/unsubscribe/{token}", quote=True)
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>Unsubscribe from {company} emails</title></head>\n"
        '<body style="font-family:sans-serif;max-width:32em;margin:3em auto;padding:0 1em">\n'
        f"<h1>Unsubscribe</h1>\n<p>Stop receiving marketing emails from {company}?</p>\n"
        f'<form method="post" action="{action}">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">Unsubscribe</button></form>\n'
        "</body></html>\n"
    )


class SuppressionService:
    """Suppressions an operator lists, adds or lifts."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._repo = SuppressionRepository(db)

    async def list_suppressions(self, size: int, token: str) -> PageResult[SuppressionRecord]:
        return await self._db.run(self._repo.list, Page(size=size, token=token))

    async def add(self, email: str) -> tuple[SuppressionRecord, bool]:
        try:
            address = normalize_email(email[:320]) if len(email) <= 320 else ""
        except ValueError:
            address = ""
        if not address:
            raise InvalidArgumentError(
                "the address is not valid",
                reason="INVALID_SUPPRESSION",
                violations=[FieldViolation("email", "is not a valid email address")],
            )
        return await self._db.run_atomic(self._add, address, utcnow())

    def _add(self, address: str, now: dt.datetime) -> tuple[SuppressionRecord, bool]:
        created = store.suppress(
            self._db, [NewSuppression(address, SuppressionReason.MANUAL, "admin")], now
        )
        record = store.suppression_of(address)
        assert record is not None  # just written, in this transaction
        return record, bool(created)

    async def delete(self, suppression_id: int | str, reason: str) -> SuppressionRecord:
        why = " ".join(reason.split())
        if not why or len(why) > MAX_SUPPRESSION_REASON:
            raise InvalidArgumentError(
                "a reason is required to lift a suppression",
                reason="INVALID_SUPPRESSION",
                violations=[
                    FieldViolation("reason", f"is required (1 to {MAX_SUPPRESSION_REASON} chars)")
                ],
            )
        number = str(suppression_id)
        if not (number.isascii() and number.isdigit() and len(number) <= 18):
            raise _not_found("suppression")
        record = await self._db.run_atomic(self._delete, int(number))
        log.info(
            "suppression lifted",
            extra={
                "suppression_id": record.suppression_id,
                "suppression_reason": record.reason,
                "why": scrub_addresses(why),
            },
        )
        return record

    @staticmethod
    def _delete(suppression_id: int) -> SuppressionRecord:
        record = store.get_suppression(suppression_id)
        if record.reason not in REMOVABLE:
            raise FailedPreconditionError(
                f"a suppression of reason {record.reason} cannot be lifted",
                reason="SUPPRESSION_NOT_REMOVABLE",
            )
        store.delete_suppression(suppression_id)
        return record
