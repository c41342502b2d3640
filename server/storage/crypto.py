"""Encryption at rest for sensitive fields (date of birth, income, dealer secrets).

Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) through MultiFernet, so
keys can rotate: the first key encrypts, every key decrypts.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class FieldCipher:
    """Encrypts and decrypts short text values."""

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("at least one data key is required")
        self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as e:
            raise ValueError("encrypted value cannot be decrypted with the configured keys") from e


def load_or_create_key_file(path: Path) -> str:
    """Returns the key in `path`, creating it (mode 0600) on first use. Development only."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key().decode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key


class _CipherHolder:
    """The cipher the encrypted model fields use; set once by the composition root."""

    cipher: FieldCipher | None = None


def configure_cipher(cipher: FieldCipher) -> None:
    _CipherHolder.cipher = cipher


def current_cipher() -> FieldCipher:
    if _CipherHolder.cipher is None:
        raise RuntimeError("the field cipher is not configured")
    return _CipherHolder.cipher
