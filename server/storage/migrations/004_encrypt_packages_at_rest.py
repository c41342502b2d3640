"""Peewee migrations -- 004_encrypt_packages_at_rest.py.

Encrypts in place what earlier versions stored in clear and the models now encrypt
(`EncryptedTextField`, `EncryptedIntegerField`; the application's data keys, which
`ccl migrate` configures first):

- `lead_package.body`: the dealer package, a whole document with the applicant's name,
  email, phone, address and monthly income;
- `delivery.last_error` and `delivery_attempt.error`: a dealer's answer to a failed
  delivery, which may echo the package;
- `credit_check.max_payment_cents` and `max_amount_cents`: a share of the monthly income per
  tier (the tier is in the same row), so the income itself; their columns become text.

The activity log now keeps only the status code of a dealer's answer (it is stored in clear
and shown to the dealer); the answers earlier delivery activities kept are cut to it.

Idempotent: a value that already decrypts with the configured keys, and an empty one, is
left alone. A value that looks like a Fernet token but that no configured key
decrypts stops the migration (the key that encrypted it is missing) instead of being
encrypted twice. Rollback decrypts the same columns back to clear text (and the credit limits
back to integers); the cut activity details are not restored.
"""

import json
from collections.abc import Callable

import peewee as pw
from peewee_migrate import Migrator

from server.storage.crypto import UndecryptableError, current_cipher

ENCRYPTED_COLUMNS = (
    ("lead_package", "body"),
    ("delivery", "last_error"),
    ("delivery_attempt", "error"),
    ("credit_check", "max_payment_cents"),
    ("credit_check", "max_amount_cents"),
)
CREDIT_LIMITS = ("max_payment_cents", "max_amount_cents")
DELIVERY_FAILURE_KINDS = ("delivery.retry_scheduled", "delivery.rejected", "delivery.dead_lettered")
BATCH = 500
# Every Fernet token starts with its version byte 0x80 and a 64-bit timestamp whose high bytes
# are zero: in URL-safe base64, "gAAAAA". A package (JSON or XML) or an error never does.
_TOKEN_PREFIX = "gAAAAA"


def _encrypted(value: str) -> str | None:
    """The value encrypted, or None when it already is."""
    cipher = current_cipher()
    try:
        cipher.decrypt(value)
    except UndecryptableError:
        if value.startswith(_TOKEN_PREFIX):
            raise
        return cipher.encrypt(value)
    return None


def _decrypted(value: str) -> str | None:
    """The value decrypted, or None when it is clear text already."""
    try:
        return current_cipher().decrypt(value)
    except UndecryptableError:
        if value.startswith(_TOKEN_PREFIX):
            raise
        return None


def _convert(database: pw.Database, convert: Callable[[str], str | None]) -> None:
    """Rewrites each non-empty value of the encrypted columns that `convert` changes, reading
    in batches by id (package bodies are a few KB each)."""
    for table, column in ENCRYPTED_COLUMNS:
        t = pw.Table(table, ("id", column)).bind(database)
        col = getattr(t, column)
        last = None
        while True:
            query = t.select(t.id, col).where(col != "").order_by(t.id).limit(BATCH)
            if last is not None:
                query = query.where(t.id > last)
            batch = list(query.tuples())
            for row_id, value in batch:
                new = convert(value)
                if new is not None:
                    t.update({col: new}).where(t.id == row_id).execute()
            if len(batch) < BATCH:
                break
            last = batch[-1][0]


def _cut_dealer_answers(database: pw.Database) -> None:
    """Cuts the dealer's answer kept in a failed delivery's activity to its status code."""
    t = pw.Table("activity", ("id", "kind", "details_json")).bind(database)
    query = t.select(t.id, t.details_json).where(t.kind.in_(DELIVERY_FAILURE_KINDS))
    for row_id, details_json in list(query.tuples()):
        details = json.loads(details_json)
        status_code = details.get("status_code")
        shown = f"HTTP {status_code}"
        if status_code and details.get("error", shown) != shown:
            details["error"] = shown
            t.update({t.details_json: json.dumps(details, sort_keys=True)}).where(
                t.id == row_id
            ).execute()


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.change_fields("credit_check", **{name: pw.TextField() for name in CREDIT_LIMITS})
    migrator.run(_convert, database, _encrypted)
    migrator.run(_cut_dealer_answers, database)


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.run(_convert, database, _decrypted)
    integers = {name: pw.BigIntegerField(default=0) for name in CREDIT_LIMITS}
    if isinstance(database, pw.PostgresqlDatabase):
        # PostgreSQL turns text into a number only when told how.
        with migrator.fake():
            migrator.change_fields("credit_check", **integers)
        for name in CREDIT_LIMITS:
            migrator.sql(
                f"ALTER TABLE credit_check ALTER COLUMN {name} TYPE BIGINT USING {name}::bigint"
            )
    else:
        migrator.change_fields("credit_check", **integers)
