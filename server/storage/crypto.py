"""Encryption at rest for sensitive fields (date of birth, income and the credit limits computed
from it, dealer packages, dealer replies to deliveries, dealer secrets).

Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) through MultiFernet, so
keys can rotate: the first key encrypts, every key decrypts.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from server.errors import FailedPreconditionError

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet


@dataclass
class UndecryptableError(FailedPreconditionError):
    """A stored value none of the configured data keys decrypts (a key was dropped from
    `CCL_DATA_KEYS`, or the database comes from another installation). Nothing a caller can
    fix: an operator must configure the key that encrypted it."""

    reason: str = "DATA_KEY_UNAVAILABLE"


FERNET_KEY_BYTES = 32


def check_fernet_key(key: str) -> None:
    """Raises ValueError unless `key` is a Fernet key (32 url-safe base64-encoded bytes), as
    `Fernet(key)` would, without loading `cryptography`."""
    try:
        raw = base64.urlsafe_b64decode(key.encode())
    except (binascii.Error, UnicodeEncodeError) as e:
        raise ValueError("Fernet key must be 32 url-safe base64-encoded bytes") from e
    if len(raw) != FERNET_KEY_BYTES:
        raise ValueError("Fernet key must be 32 url-safe base64-encoded bytes")


class FieldCipher:
    """Encrypts and decrypts text values. The keys are checked here; `cryptography` (~9 MB
    resident) is loaded by the first encryption or decryption, so an idle server does without."""

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("at least one data key is required")
        for key in keys:
            check_fernet_key(key)
        self._keys = list(keys)
        self._fernet: MultiFernet | None = None

    def _load(self) -> MultiFernet:
        from cryptography.fernet import Fernet, MultiFernet  # lazy: see the class docstring

        self._fernet = MultiFernet([Fernet(k.encode()) for k in self._keys])
        return self._fernet

    def encrypt(self, plaintext: str) -> str:
        fernet = self._fernet or self._load()
        return fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        fernet = self._fernet or self._load()
        try:
            return fernet.decrypt(token.encode()).decode()
        except Exception as e:
            from cryptography.fernet import InvalidToken  # loaded by `_load`: a dict lookup

            if isinstance(e, InvalidToken):
                raise UndecryptableError(
                    "stored data cannot be decrypted with the configured data keys"
                ) from e
            raise


# Files holding keys or personal data (the key file, the SQLite database and its `-wal`/`-shm`
# siblings, `make run`'s admin key) are readable by their owner only, and so are the directories
# created for them. Modes are given at creation (os.open, mkdir), never by changing the process's
# umask, which would race with other threads creating files.
PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700

log = logging.getLogger("ccl.storage")


def make_private_dirs(path: Path) -> None:
    """Creates directory `path` and its missing parents with mode 0700. Directories that exist
    already are left as they are (they may be shared ones, such as /tmp)."""
    for directory in reversed([path, *path.parents]):
        if not directory.exists():
            directory.mkdir(mode=PRIVATE_DIR_MODE, exist_ok=True)


def create_private_file(path: Path) -> bool:
    """Creates `path` empty with mode 0600 and returns True; if it exists, restricts it to its
    owner (`restrict_to_owner`) and returns False."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))
    except FileExistsError:
        restrict_to_owner(path)
        return False
    return True


def restrict_to_owner(path: Path) -> None:
    """Takes the group and other permissions off an existing file (one made before files were
    created 0600), with a warning; does nothing for a missing or already private file."""
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        return
    if not mode & 0o077:
        return
    try:
        path.chmod(mode & ~0o077)
    except OSError:
        log.warning(
            "a file with keys or personal data is readable by other users and cannot be "
            "restricted: make it mode 0600",
            extra={"path": str(path), "mode": oct(mode)},
        )
        return
    log.warning(
        "a file with keys or personal data was readable by other users: restricted to its owner",
        extra={"path": str(path), "previous_mode": oct(mode)},
    )


def load_or_create_key_file(path: Path) -> str:
    """Returns the key in `path`, creating it (mode 0600, in directories created 0700) on first
    use; an existing key file others can read is restricted to its owner. Development only: the
    composition root never calls it in production."""
    make_private_dirs(path.parent)
    if create_private_file(path):
        key = base64.urlsafe_b64encode(os.urandom(FERNET_KEY_BYTES)).decode()  # Fernet's format
        path.write_text(key + "\n")
        return key
    return path.read_text().strip()


class _CipherHolder:
    """The cipher the encrypted model fields use; set once by the composition root."""

    cipher: FieldCipher | None = None


def configure_cipher(cipher: FieldCipher) -> None:
    _CipherHolder.cipher = cipher


def current_cipher() -> FieldCipher:
    if _CipherHolder.cipher is None:
        raise RuntimeError("the field cipher is not configured")
    return _CipherHolder.cipher
