"""API keys: creation (shown once), hashed storage, verification with a short cache, revocation.

A key looks like `ccl_<key id>_<secret>`. The key id is public and indexes the
row; only SHA-256 of the whole key is stored. The secret has 256 bits of
entropy, so a fast hash is the right tool (a password KDF protects low-entropy
secrets, which these are not), and verification costs microseconds.

A verified key is cached for `cache_seconds` (`CCL_API_KEY_CACHE_SECONDS`), together with
the check that its dealer is active. Revoking a key or deactivating a dealer through this
process drops the affected keys from its cache at once (`forget_key`, `forget_dealer`);
other processes (the `ccl keys revoke` CLI, another server) see the change within the
cache time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from server.domain.principal import Principal, Role
from server.errors import FieldViolation, InvalidArgumentError, NotFoundError, UnauthenticatedError
from server.storage.api_keys import ApiKeyRecord, ApiKeyRepository
from server.storage.db import Database


@dataclass(frozen=True)
class CreatedKey:
    key_id: str
    api_key: str
    role: Role
    dealer_id: str | None


KEY_PREFIX = "ccl"
ENV_ADMIN_KEY_ID = "env-admin"


def _hash(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


class ApiKeyService:
    """Creates, verifies and revokes API keys."""

    def __init__(
        self,
        db: Database,
        admin_api_key: str = "",
        cache_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._keys = ApiKeyRepository(db)
        self._admin_hash = _hash(admin_api_key) if admin_api_key else ""
        self._cache_seconds = cache_seconds
        self._clock = clock
        # digest -> (expiry, principal). Guarded by a lock: revocation may come from any thread.
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()
        # Bumped by every invalidation, so a lookup that began before it is never cached.
        self._generation = 0

    # --- creation and revocation (CLI, admin tooling) -------------------------------------

    def create_sync(self, role: Role, dealer_id: str | None = None, name: str = "") -> CreatedKey:
        if role is Role.DEALER and not dealer_id:
            raise InvalidArgumentError(
                "a dealer key needs a dealer",
                reason="DEALER_REQUIRED",
                violations=[FieldViolation("dealer", "required for role dealer")],
            )
        if role is not Role.DEALER and dealer_id:
            raise InvalidArgumentError(
                "only dealer keys belong to a dealer",
                reason="DEALER_NOT_ALLOWED",
                violations=[FieldViolation("dealer", "only allowed for role dealer")],
            )
        key_id = secrets.token_hex(8)
        api_key = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        self._keys.create(key_id, name, role, dealer_id, _hash(api_key))  # or DEALER_NOT_FOUND
        return CreatedKey(key_id=key_id, api_key=api_key, role=role, dealer_id=dealer_id)

    def revoke_sync(self, key_id: str) -> None:
        if not self._keys.revoke(key_id):
            raise NotFoundError("no active key with that id", reason="API_KEY_NOT_FOUND")
        self.forget_key(key_id)

    def forget_key(self, key_id: str) -> None:
        """Drops key `key_id` from this process's cache: its next use is checked again."""
        self._forget(lambda p: p.key_id == key_id)

    def forget_dealer(self, dealer_id: str) -> None:
        """Drops dealer `dealer_id`'s keys from this process's cache (it was deactivated)."""
        self._forget(lambda p: p.dealer_id == dealer_id)

    def _forget(self, matches: Callable[[Principal], bool]) -> None:
        with self._lock:
            self._generation += 1
            for digest in [d for d, (_, p) in self._cache.items() if matches(p)]:
                del self._cache[digest]

    def list_sync(self) -> list[ApiKeyRecord]:
        return self._keys.list()

    # --- verification (every RPC) -------------------------------------------------------

    async def authenticate(self, api_key: str | None) -> Principal:
        """Returns the caller for `api_key`, or raises UnauthenticatedError."""
        if not api_key:
            raise UnauthenticatedError(
                "an API key is required (Authorization: Bearer <key> or x-api-key)",
                reason="API_KEY_MISSING",
            )
        digest = _hash(api_key)
        if self._admin_hash and hmac.compare_digest(digest, self._admin_hash):
            return Principal(key_id=ENV_ADMIN_KEY_ID, role=Role.ADMIN)
        now = self._clock()
        with self._lock:
            cached = self._cache.get(digest)
            generation = self._generation
        if cached and cached[0] > now:
            return cached[1]
        principal = await self._db.run(self._lookup, api_key, digest)
        if principal is None:
            with self._lock:
                self._cache.pop(digest, None)
            raise UnauthenticatedError("the API key is not valid", reason="API_KEY_INVALID")
        with self._lock:
            if self._cache_seconds > 0 and generation == self._generation:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[digest] = (now + self._cache_seconds, principal)
        return principal

    def _lookup(self, api_key: str, digest: str) -> Principal | None:
        parts = api_key.split("_", 2)
        if len(parts) != 3 or parts[0] != KEY_PREFIX:
            return None
        # None too when revoked, or when its dealer is deactivated (cached like the key itself).
        key = self._keys.usable(parts[1])
        if key is None or not hmac.compare_digest(key.secret_hash, digest):
            return None
        return Principal(key_id=key.key_id, role=Role(key.role), dealer_id=key.dealer_id)
