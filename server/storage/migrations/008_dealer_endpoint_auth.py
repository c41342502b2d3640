"""Peewee migrations -- 008_dealer_endpoint_auth.py.

Adds a dealer's endpoint credentials (HTTP Basic or one header of its own): one JSON object,
encrypted like the signing secrets (`EncryptedTextField`, the application's data keys, which
`ccl migrate` configures first); NULL when the endpoint needs none.

Credentials used to be written into the endpoint URL (`https://user:pass@crm.example/x`), which
shows them to everyone who reads the dealer and to every log line with the URL. Each such URL
is cleaned here: its user and password (percent-decoded, as the HTTP client sent them) become
the dealer's Basic credentials, and the URL keeps only scheme, host, port, path and query.

Rollback puts Basic credentials back into the URL (percent-encoded) and drops the column;
header credentials have no place in a URL and are lost.
"""

import json
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import peewee as pw
from peewee_migrate import Migrator

from server.storage.crypto import current_cipher


def _dealers(database: pw.Database) -> pw.Table:
    return pw.Table("dealer", ("id", "endpoint_url", "endpoint_auth")).bind(database)


def _move_userinfo_out(database: pw.Database) -> None:
    """Moves the userinfo of every endpoint URL into the encrypted Basic credentials."""
    t = _dealers(database)
    rows = list(t.select(t.id, t.endpoint_url).where(t.endpoint_url.contains("@")).tuples())
    for dealer_id, url in rows:
        try:
            parts = urlsplit(url)
        except ValueError:
            continue
        if "@" not in parts.netloc:
            continue
        userinfo, _, host = parts.netloc.rpartition("@")
        username, _, password = userinfo.partition(":")
        clean = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
        credentials = json.dumps(
            {"kind": "basic", "username": unquote(username), "password": unquote(password)}
        )
        t.update(
            {t.endpoint_url: clean, t.endpoint_auth: current_cipher().encrypt(credentials)}
        ).where(t.id == dealer_id).execute()


def _move_userinfo_back(database: pw.Database) -> None:
    """Puts Basic credentials back into the endpoint URL."""
    t = _dealers(database)
    rows = list(
        t.select(t.id, t.endpoint_url, t.endpoint_auth)
        .where(t.endpoint_auth.is_null(False))
        .tuples()
    )
    for dealer_id, url, stored in rows:
        if not stored:
            continue
        credentials = json.loads(current_cipher().decrypt(stored))
        if credentials.get("kind") != "basic":
            continue
        parts = urlsplit(url)
        userinfo = quote(credentials["username"], safe="")
        if credentials["password"]:
            userinfo += ":" + quote(credentials["password"], safe="")
        netloc = f"{userinfo}@{parts.netloc}"
        back = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
        t.update({t.endpoint_url: back}).where(t.id == dealer_id).execute()


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.add_fields("dealer", endpoint_auth=pw.TextField(null=True))
    migrator.run(_move_userinfo_out, database)


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.run(_move_userinfo_back, database)
    migrator.remove_fields("dealer", "endpoint_auth")
