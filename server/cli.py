"""The `ccl` command: serve, migrate, run the dev stack, manage API keys."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from server.settings import Settings

if TYPE_CHECKING:
    from server.app import Application

T = TypeVar("T")


def _settings() -> Settings:
    return Settings()


def cmd_serve(args: argparse.Namespace) -> int:
    from server.app import serve
    from server.logs import configure_logging

    settings = _settings()
    if args.port is not None:
        settings.grpc_port = args.port
    configure_logging(settings.log_level)
    asyncio.run(serve(settings, migrate_first=args.migrate))
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
    from server.services.auth import parse_role

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


def cmd_run(args: argparse.Namespace) -> int:
    from server.ops.stack import run_stack

    return run_stack(_settings())


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

    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(
        dest="keys_command", required=True
    )
    p = keys.add_parser("create", help="create a key and print it once")
    p.add_argument("--role", required=True, help="admin, service, dealer, ops or agent")
    p.add_argument("--dealer", default=None, help="the dealer id (dealer keys only)")
    p.add_argument("--name", default="", help="a label for the key")
    p.set_defaults(fn=cmd_keys_create)
    p = keys.add_parser("revoke", help="revoke a key by its id")
    p.add_argument("key_id")
    p.set_defaults(fn=cmd_keys_revoke)
    p = keys.add_parser("list", help="list keys (ids and roles, never secrets)")
    p.set_defaults(fn=cmd_keys_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    from server.errors import CclError

    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except CclError as e:
        print(f"error: {e.message} ({e.reason})", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
