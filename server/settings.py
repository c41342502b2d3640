"""The one settings object, read from `CCL_*` environment variables (and `DATABASE_URL`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

VERSION = "0.1.0"


class Settings(BaseSettings):
    """Every knob of the server, each documented; the README's configuration table mirrors it."""

    model_config = SettingsConfigDict(env_prefix="CCL_", extra="ignore", populate_by_name=True)

    database_url: str = Field(
        default="sqlite:///var/ccl.db",
        validation_alias=AliasChoices("DATABASE_URL", "CCL_DATABASE_URL"),
        description="Database: sqlite:///path (default var/ccl.db) or postgresql://user@host/db.",
    )
    environment: str = Field(
        default="development",
        validation_alias=AliasChoices("CCL_ENV", "CCL_ENVIRONMENT"),
        description=(
            "development or production. In production the server refuses to start without "
            "CCL_DATA_KEYS (the development key file is never used)."
        ),
    )
    grpc_host: str = Field(default="127.0.0.1", description="Address the gRPC server binds.")
    grpc_port: int = Field(default=50051, description="gRPC port; 0 picks a free one.")
    http_host: str = Field(
        default="127.0.0.1",
        description="Address Envoy's listener binds (0.0.0.0 to serve other machines).",
    )
    http_port: int = Field(default=8080, description="Envoy's REST + gRPC listener port.")
    envoy_admin_port: int = Field(default=9901, description="Envoy admin port (127.0.0.1 only).")
    admin_api_key: str = Field(
        default="",
        description="When set, accepted as an admin API key (in addition to stored keys).",
        repr=False,
    )
    data_keys: str = Field(
        default="",
        description=(
            "Comma-separated Fernet keys encrypting sensitive fields at rest; the first encrypts, "
            "all decrypt (rotation). Empty: a key file at data_key_file is used, created if absent."
        ),
        repr=False,
    )
    data_key_file: Path = Field(
        default=Path("var/data.key"),
        description="Key file used when CCL_DATA_KEYS is empty (development).",
    )
    db_threads: int = Field(
        default=8, ge=1, le=64, description="Threads (and connections) for database work."
    )
    cors_origins: str = Field(
        default="https://completecarloans.com,https://www.completecarloans.com,http://localhost:3000",
        description="Comma-separated browser origins allowed by Envoy's CORS policy.",
    )
    default_region: str = Field(
        default="US", description="Region for phone numbers written without a country code."
    )
    api_key_cache_seconds: float = Field(
        default=10.0,
        ge=0,
        description="How long a verified API key is cached (revocation takes effect within it).",
    )
    shutdown_grace_seconds: float = Field(
        default=10.0, ge=0, description="How long in-flight calls may finish on SIGTERM/SIGINT."
    )
    shutdown_drain_delay_seconds: float = Field(
        default=1.0,
        ge=0,
        description=(
            "On shutdown, how long health says NOT_SERVING before the server stops accepting "
            "calls, so Envoy's health checks (every 2 s, 2 failures) route elsewhere first."
        ),
    )
    request_message_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description=(
            "How long a unary gRPC call may take to send its request message after its headers; "
            "a call that never sends it is refused (DEADLINE_EXCEEDED) instead of held open."
        ),
    )
    log_level: str = Field(default="INFO", description="Log level.")
    event_loop: Literal["asyncio", "uvloop"] = Field(
        default="asyncio",
        description=(
            "Event loop of `ccl serve`: asyncio (the standard library's) or uvloop (needs the "
            "uvloop package; `make bench` measures both)."
        ),
    )
    flexpath_base_url: str = Field(
        default="https://api.flexpath.example/",
        description="FlexPath credit API base URL (see docs/flexpath.md).",
    )
    flexpath_api_key: str = Field(
        default="",
        description="FlexPath API key; empty: credit checks use the deterministic simulation.",
        repr=False,
    )
    duplicate_lookback_days: int = Field(
        default=30,
        ge=0,
        description="A lead with the email or phone of a lead this recent is a duplicate.",
    )
    identity_max_emails: int = Field(
        default=5, ge=1, description="Most emails one stitched identity may collect."
    )
    identity_max_phones: int = Field(
        default=5, ge=1, description="Most phones one stitched identity may collect."
    )
    delivery_max_attempts: int = Field(
        default=8, ge=1, description="Dealer delivery attempts before a package is dead-lettered."
    )
    delivery_backoff_base_seconds: float = Field(
        default=5.0, gt=0, description="First retry delay of a dealer delivery (doubles, jittered)."
    )
    delivery_backoff_max_seconds: float = Field(
        default=3600.0, gt=0, description="Longest delay between two dealer delivery attempts."
    )
    delivery_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Timeout of one dealer delivery attempt."
    )
    delivery_concurrency: int = Field(
        default=16,
        ge=1,
        le=256,
        description=(
            "Dealer deliveries in flight at once per process; each runs on its own, so a slow "
            "dealer endpoint delays only its own deliveries."
        ),
    )
    worker_poll_seconds: float = Field(
        default=1.0, gt=0, description="How often outbox workers look for due work when idle."
    )
    webhook_tolerance_seconds: int = Field(
        default=300, ge=1, description="Largest age (and clock skew) of a signed dealer webhook."
    )
    pipeline_sweep_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Leads whose pipeline stopped (a crash) are resumed after this long.",
    )
    mailgun_api_key: str = Field(
        default="",
        description="Mailgun API key; empty: email is simulated (payloads recorded, nothing sent).",
        repr=False,
    )
    mailgun_domain: str = Field(
        default="", description="The Mailgun sending domain (mg.example.com); needed with a key."
    )
    mailgun_base_url: str = Field(
        default="https://api.mailgun.net",
        description="Mailgun API base URL (https://api.eu.mailgun.net for the EU region).",
    )
    mailgun_webhook_signing_key: str = Field(
        default="",
        description=(
            "Mailgun's webhook signing key; empty: every Mailgun webhook is refused "
            "(SIGNATURE_INVALID)."
        ),
        repr=False,
    )
    mailgun_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Timeout of one call to Mailgun's API."
    )
    openai_api_key: str = Field(
        default="",
        description=(
            "OpenAI API key; set: campaign email may open with a line OpenAI wrote from the "
            "recipient's first name and vehicle (store=False); empty: the template's own text."
        ),
        repr=False,
    )
    openai_base_url: str = Field(
        default="https://api.openai.com/v1",
        description="OpenAI API base URL (any OpenAI-compatible chat completions endpoint).",
    )
    openai_model: str = Field(
        default="gpt-4o-mini", description="The chat model that writes the opening lines."
    )
    openai_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Timeout of one attempt of one call to OpenAI's API."
    )
    mail_from: str = Field(
        default="",
        description=(
            "The From of marketing email; empty: the company name and noreply@ the Mailgun "
            "domain (or example.com in simulation)."
        ),
    )
    email_send_rate: float = Field(
        default=100.0, gt=0, description="Campaign messages handed to Mailgun per second."
    )
    email_quiet_hours: bool = Field(
        default=True,
        description="Hold campaign mail between 21:00 and 08:00 on the recipient's wall clock.",
    )
    email_default_time_zone: str = Field(
        default="America/Chicago",
        description="The wall clock of a recipient whose state is unknown (quiet hours).",
    )
    email_frequency_cap_hours: float = Field(
        default=24.0,
        ge=0,
        description=(
            "At most one marketing email per address in this many hours, across every "
            "campaign and drip step (0: no cap). Transactional mail is not capped."
        ),
    )
    email_unknown_grace_minutes: float = Field(
        default=60.0,
        gt=0,
        description=(
            "A batch whose hand-over to Mailgun has an unknown outcome and that Mailgun's "
            "events do not show accepted after this long is queued again."
        ),
    )
    drip_enrol_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How often running drip campaigns look for newly abandoned applications.",
    )
    credit_bureau_name: str = Field(
        default="Experian",
        description="The consumer reporting agency named in adverse-action notices.",
    )
    credit_bureau_address: str = Field(
        default="P.O. Box 2002, Allen, TX 75013",
        description="Its mailing address, as the notice gives it.",
    )
    credit_bureau_phone: str = Field(
        default="1-888-397-3742", description="Its toll-free number, as the notice gives it."
    )
    credit_bureau_website: str = Field(
        default="https://www.experian.com", description="Its website (empty: not given)."
    )
    unsubscribe_keys: str = Field(
        default="",
        description=(
            "Comma-separated HMAC keys (at least 16 characters) signing unsubscribe links; the "
            "first signs, all verify (rotation). Empty: derived from the data keys."
        ),
        repr=False,
    )
    public_base_url: str = Field(
        default="http://127.0.0.1:8080",
        description="Public URL of Envoy, for the links in emails (unsubscribe).",
    )
    company_name: str = Field(
        default="Complete Car Loans", description="The sender's name in every email's footer."
    )
    company_postal_address: str = Field(
        default="",
        description="The sender's postal address in every marketing email's footer (CAN-SPAM).",
    )
    max_request_bytes: int = Field(
        default=1_048_576, description="Largest request body Envoy and the server accept."
    )
    rate_limit_per_second: int = Field(
        default=2000, description="Envoy's local rate limit: requests per second per listener."
    )

    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    def data_key_list(self) -> list[str]:
        return [k.strip() for k in self.data_keys.split(",") if k.strip()]

    def mail_from_address(self) -> str:
        """CCL_MAIL_FROM, or `Company Name <noreply@domain>`."""
        if self.mail_from.strip():
            return self.mail_from.strip()
        name = "".join(ch for ch in self.company_name if ch not in '"<>\\').strip()
        domain = self.mailgun_domain.strip() or "example.com"
        return f'"{name}" <noreply@{domain}>' if name else f"noreply@{domain}"

    def unsubscribe_key_list(self) -> list[str]:
        return [k.strip() for k in self.unsubscribe_keys.split(",") if k.strip()]
