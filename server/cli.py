"""The `ccl` command: serve, migrate, run the dev stack, manage API keys."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from server.settings import Settings

if TYPE_CHECKING:
    from server.app import Application
    from server.domain.dealers import EndpointCredentials

T = TypeVar("T")


def _settings() -> Settings:
    return Settings()


def _without_postgresql_driver(database_url: str) -> None:
    """A server on SQLite never loads PostgreSQL's driver. peewee imports psycopg2 as it is
    itself imported (it has no switch), which maps about 6.5 MB of psycopg2's bundled libpq and
    OpenSSL into the process (issue 9: idle RSS). A `None` in `sys.modules` is Python's own way
    to make an import fail: set before peewee loads, peewee finds no psycopg2 and leaves its
    PostgreSQL support off in this process, which has no use for it."""
    if database_url.startswith("sqlite") and not {"peewee", "psycopg2"} & set(sys.modules):
        sys.modules["psycopg2"] = None  # type: ignore[assignment]


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings()
    _without_postgresql_driver(settings.database_url)
    from server.logs import configure_logging
    from server.main import run, serve

    if args.port is not None:
        settings.grpc_port = args.port
    configure_logging(settings.log_level)
    if args.migrate:
        # `ccl migrate` in a child process (the same settings, from the environment): what
        # migrating loads (peewee-migrate, about 6 MB) stays out of the server's memory.
        migrated = subprocess.run([sys.executable, "-m", "server.cli", "migrate"], check=False)
        if migrated.returncode != 0:
            return migrated.returncode
    run(serve(settings), settings.event_loop)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from server.app import migrate
    from server.logs import configure_logging

    configure_logging("WARNING")
    applied = migrate(_settings())
    print("applied: " + ", ".join(applied) if applied else "database is up to date")
    return 0


def cmd_make_migration(args: argparse.Namespace) -> int:
    from server.app import build_application
    from server.storage.migrate import create_migration

    app = build_application(_settings())
    try:
        name = create_migration(app.db.db, args.name)
    finally:
        app.close()
    print(f"wrote {name}" if name else "no changes: models match the migrations")
    return 0


def _with_app(fn: Callable[[Application], T]) -> T:
    from server.app import build_application

    app = build_application(_settings())
    try:
        app.db.db.connect(reuse_if_open=True)
        return fn(app)
    finally:
        app.db.db.close()
        app.close()


def cmd_keys_create(args: argparse.Namespace) -> int:
    from server.domain.principal import parse_role

    role = parse_role(args.role)
    created = _with_app(lambda app: app.api_keys.create_sync(role, args.dealer, args.name))
    print(f"key id: {created.key_id}", file=sys.stderr)
    print(f"role:   {created.role.value}", file=sys.stderr)
    print("the key is shown once; store it now:", file=sys.stderr)
    print(created.api_key)
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    _with_app(lambda app: app.api_keys.revoke_sync(args.key_id))
    print(f"revoked {args.key_id}")
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    rows = _with_app(lambda app: app.api_keys.list_sync())
    for r in rows:
        state = f"revoked {r.revoked_at:%Y-%m-%d}" if r.revoked_at else "active"
        print(f"{r.id}  {r.role:<8} {r.dealer_id or '-':<36} {state}  {r.name}")
    return 0


def _csv(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


class _CredentialsArgumentError(Exception):
    """Endpoint-credential flags that do not fit together, or name an unset variable."""


def _endpoint_credentials(args: argparse.Namespace) -> EndpointCredentials | None:
    """The endpoint credentials the flags give (None for none). Secrets are read from the
    environment variables the flags name, never from the command line (which other users of the
    machine can read in the process list, and shells keep in their history)."""
    from server.domain.dealers import EndpointCredentials

    def secret(flag: str, variable: str | None) -> str:
        if not variable:
            raise _CredentialsArgumentError(f"{flag} is required with it")
        value = os.environ.get(variable)
        if value is None:
            raise _CredentialsArgumentError(f"environment variable {variable} is not set")
        return value

    if args.basic_auth_user is not None and args.auth_header is not None:
        raise _CredentialsArgumentError("give --basic-auth-user or --auth-header, not both")
    if args.basic_auth_user is not None:
        password = secret("--basic-auth-password-env", args.basic_auth_password_env)
        return EndpointCredentials(kind="basic", username=args.basic_auth_user, password=password)
    if args.auth_header is not None:
        value = secret("--auth-header-value-env", args.auth_header_value_env)
        return EndpointCredentials(kind="header", name=args.auth_header, value=value)
    if args.basic_auth_password_env or args.auth_header_value_env:
        raise _CredentialsArgumentError(
            "--basic-auth-password-env goes with --basic-auth-user, "
            "--auth-header-value-env with --auth-header"
        )
    return None


def cmd_dealers_create(args: argparse.Namespace) -> int:
    from server.domain.dealers import DealerInput

    try:
        credentials = _endpoint_credentials(args)
    except _CredentialsArgumentError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    dealer = DealerInput(
        name=args.name,
        states=_csv(args.states),
        zip_prefixes=_csv(args.zip_prefixes),
        accepted_tiers=_csv(args.tiers),
        daily_cap=args.daily_cap,
        priority=args.priority,
        weight=args.weight,
        endpoint_url=args.endpoint,
        delivery_format=args.format,
        signing_secret=args.secret,
        contact_email=args.contact_email,
        contact_phone=args.contact_phone,
        endpoint_credentials=credentials,
        delivery_channel=args.channel,
        intake_email=args.intake_email,
    )
    record, generated = _with_app(lambda app: asyncio.run(app.dealers.create(dealer)))
    print(record.dealer_id)
    if generated:
        print(f"signing secret (shown once; store it now): {generated}", file=sys.stderr)
    return 0


def cmd_dealers_rotate_secret(args: argparse.Namespace) -> int:
    secret = _with_app(
        lambda app: asyncio.run(app.dealers.rotate_secret(args.dealer_id, args.overlap_hours))
    )
    print(secret)
    print(
        f"new signing secret (shown once; store it now). The previous one keeps signing and"
        f" verifying for {args.overlap_hours:g} hour(s).",
        file=sys.stderr,
    )
    return 0


def cmd_dealers_list(args: argparse.Namespace) -> int:
    page = _with_app(lambda app: asyncio.run(app.dealers.list_dealers(500, "")))
    for d in page.items:
        area = ",".join(d.states + [z + "*" for z in d.zip_prefixes]) or "-"
        state = "active" if d.active else "inactive"
        print(
            f"{d.dealer_id}  {state:<8} p{d.priority:<4} w{d.weight:<3} cap {d.daily_cap or '-':<6}"
            f" {d.delivery_format:<4} {area:<20} {d.name}"
        )
    return 0


def cmd_dealers_update(args: argparse.Namespace) -> int:
    from server.domain.dealers import DealerInput

    changes = {
        "daily_cap": args.daily_cap,
        "priority": args.priority,
        "weight": args.weight,
        "endpoint_url": args.endpoint,
        "active": args.active,
        "contact_email": args.contact_email,
        "contact_phone": args.contact_phone,
        "delivery_channel": args.channel,
        "intake_email": args.intake_email,
    }
    fields = [k for k, v in changes.items() if v is not None]
    dealer = DealerInput(**{k: v for k, v in changes.items() if v is not None})
    try:
        credentials = _endpoint_credentials(args)
    except _CredentialsArgumentError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if credentials is not None and args.clear_endpoint_auth:
        print("error: --clear-endpoint-auth clears what the other flags set", file=sys.stderr)
        return 2
    if credentials is not None or args.clear_endpoint_auth:
        fields.append("endpoint_auth")  # the update-mask path; no credentials clears them
        dealer.endpoint_credentials = credentials
    record = _with_app(lambda app: asyncio.run(app.dealers.update(args.dealer_id, dealer, fields)))
    print(f"updated {record.dealer_id}: {', '.join(fields)}")
    return 0


def cmd_deliveries_retry(args: argparse.Namespace) -> int:
    from server.domain.principal import Principal, Role

    operator = Principal(key_id="cli", role=Role.ADMIN)

    def retry(app: Application) -> list[str]:
        ids = list(args.delivery_ids)
        if args.all_failed:
            ids += app.deliveries.failed_ids()
        for delivery_id in ids:
            asyncio.run(app.leads.redeliver(operator, delivery_id))
        return ids

    ids = _with_app(retry)
    print(f"queued again: {len(ids)} deliver{'y' if len(ids) == 1 else 'ies'}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from ccl_client import importer

    return importer.main_from_args(args)


def cmd_run(args: argparse.Namespace) -> int:
    from server.ops.stack import run_stack

    return run_stack(_settings())


def _add_import_arguments(parser: argparse.ArgumentParser) -> None:
    from ccl_client import importer

    importer.add_arguments(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ccl", description="CCL Lead Platform")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the gRPC server (until SIGTERM/SIGINT)")
    p.add_argument("--port", type=int, default=None, help="override CCL_GRPC_PORT")
    p.add_argument("--migrate", action="store_true", help="apply pending migrations first")
    p.set_defaults(fn=cmd_serve)

    p = sub.add_parser("migrate", help="apply pending database migrations")
    p.set_defaults(fn=cmd_migrate)

    p = sub.add_parser("make-migration", help="write the next migration from model changes")
    p.add_argument("name")
    p.set_defaults(fn=cmd_make_migration)

    p = sub.add_parser("run", help="migrate, then run the gRPC server and Envoy together")
    p.set_defaults(fn=cmd_run)

    p = sub.add_parser("import", help="import leads from a CSV or JSON-lines file (ImportLeads)")
    _add_import_arguments(p)
    p.set_defaults(fn=cmd_import)

    dealers = sub.add_parser("dealers", help="manage dealers").add_subparsers(
        dest="dealers_command", required=True
    )
    # No abbreviated flags: `--basic-auth-password SECRET` must not pass for `...-env VAR`.
    p = dealers.add_parser("create", help="create a dealer (prints its id)", allow_abbrev=False)
    p.add_argument("--name", required=True)
    p.add_argument("--states", default="", help="comma-separated state codes, e.g. IL,IN")
    p.add_argument("--zip-prefixes", default="", help="comma-separated ZIP prefixes, e.g. 606,607")
    p.add_argument("--tiers", default="", help="accepted credit tiers, e.g. A,B,C (empty: all)")
    p.add_argument("--daily-cap", type=int, default=0, help="leads a day; 0: no cap")
    p.add_argument("--priority", type=int, default=100, help="lower is tried first")
    p.add_argument("--weight", type=int, default=1, help="share within its priority (1-100)")
    p.add_argument("--endpoint", default="", help="URL packages are POSTed to")
    p.add_argument("--format", default="json", choices=["json", "adf"])
    p.add_argument(
        "--channel",
        default="https",
        choices=["https", "email"],
        help="how packages travel: POSTed to --endpoint, or ADF emailed to --intake-email",
    )
    p.add_argument("--intake-email", default="", help="the CRM's lead intake address (email)")
    p.add_argument("--contact-email", default="", help="who at the dealer receives the leads")
    p.add_argument(
        "--contact-phone", default="", help="their phone (an ADF dealer needs an email or a phone)"
    )
    p.add_argument(
        "--secret",
        default="",
        help="signing secret, whsec_<base64 of 24-64 random bytes> (generated when omitted)",
    )
    _add_endpoint_auth_arguments(p)
    p.set_defaults(fn=cmd_dealers_create)
    p = dealers.add_parser("list", help="list dealers")
    p.set_defaults(fn=cmd_dealers_list)
    p = dealers.add_parser(
        "update",
        help="change a dealer's cap, priority, weight, endpoint, credentials or state",
        allow_abbrev=False,
    )
    p.add_argument("dealer_id")
    p.add_argument("--daily-cap", type=int)
    p.add_argument("--priority", type=int)
    p.add_argument("--weight", type=int)
    p.add_argument("--endpoint")
    p.add_argument("--contact-email")
    p.add_argument("--contact-phone")
    p.add_argument("--channel", choices=["https", "email"])
    p.add_argument("--intake-email")
    p.add_argument("--active", action=argparse.BooleanOptionalAction, default=None)
    _add_endpoint_auth_arguments(p)
    p.add_argument(
        "--clear-endpoint-auth",
        action="store_true",
        help="remove the endpoint's credentials (deliveries carry only the signature)",
    )
    p.set_defaults(fn=cmd_dealers_update)
    p = dealers.add_parser(
        "rotate-secret",
        help="give a dealer a new signing secret (prints it once); the old one keeps working"
        " for the overlap",
    )
    p.add_argument("dealer_id")
    p.add_argument(
        "--overlap-hours",
        type=float,
        default=24.0,
        help="hours both secrets sign deliveries and verify webhooks (default 24; 0: none)",
    )
    p.set_defaults(fn=cmd_dealers_rotate_secret)

    deliveries = sub.add_parser("deliveries", help="dealer deliveries").add_subparsers(
        dest="deliveries_command", required=True
    )
    p = deliveries.add_parser("retry", help="queue rejected or dead-lettered deliveries again")
    p.add_argument("delivery_ids", nargs="*", help="delivery ids")
    p.add_argument("--all-failed", action="store_true", help="every rejected or dead-lettered one")
    p.set_defaults(fn=cmd_deliveries_retry)

    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(
        dest="keys_command", required=True
    )
    p = keys.add_parser("create", help="create a key and print it once")
    p.add_argument(
        "--role",
        required=True,
        help="admin, service, dealer, ops, agent or intake (submit-only, for the website)",
    )
    p.add_argument("--dealer", default=None, help="the dealer id (dealer keys only)")
    p.add_argument("--name", default="", help="a label for the key")
    p.set_defaults(fn=cmd_keys_create)
    p = keys.add_parser("revoke", help="revoke a key by its id")
    p.add_argument("key_id")
    p.set_defaults(fn=cmd_keys_revoke)
    p = keys.add_parser("list", help="list keys (ids and roles, never secrets)")
    p.set_defaults(fn=cmd_keys_list)
    return parser


def _add_endpoint_auth_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "endpoint credentials",
        "how deliveries authenticate to the dealer's endpoint besides the signature: HTTP Basic"
        " or one header; secrets come from environment variables, never from the command line",
    )
    g.add_argument("--basic-auth-user", metavar="USER", help="HTTP Basic user name")
    g.add_argument(
        "--basic-auth-password-env",
        metavar="VAR",
        help="the environment variable holding the HTTP Basic password",
    )
    g.add_argument(
        "--auth-header", metavar="NAME", help="a header sent with every delivery, e.g. X-Api-Key"
    )
    g.add_argument(
        "--auth-header-value-env",
        metavar="VAR",
        help="the environment variable holding that header's value",
    )


def main(argv: list[str] | None = None) -> int:
    from server.errors import CclError

    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except CclError as e:
        print(f"error: {e.message} ({e.reason})", file=sys.stderr)
        for v in getattr(e, "violations", ()):  # one line per bad field
            print(f"  {v.field}: {v.description}", file=sys.stderr)
        return 2
    except Exception as e:
        # Imported only now: `server.app` loads peewee, which `cmd_serve` must load after
        # choosing the database drivers (`_without_postgresql_driver`).
        from server.app import ConfigurationError

        if not isinstance(e, ConfigurationError):
            raise
        print(f"error: {e}", file=sys.stderr)  # refused settings: one line, no traceback
        return 2


if __name__ == "__main__":
    sys.exit(main())
