"""Secrets at rest: connection passwords encrypted, user passwords and tokens hashed."""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Sequence

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from dancecat_core.errors import ConfigError

_hasher = PasswordHasher()


class SecretBox:
    """Fernet encryption under a list of keys: the first encrypts, any of them decrypts.

    Holding several keys is what lets ``dancecat rotate-key`` re-encrypt under a new key
    while workers that still know only the old one keep running.
    """

    def __init__(self, keys: Sequence[str], reload: Callable[[], Sequence[str]] | None = None):
        if not keys:
            raise ConfigError("setting ENCRYPTION_KEYS: no key")
        self._keys = tuple(keys)
        self._reload = reload
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """Decrypt; on an unknown key, re-read the key file once (``dancecat rotate-key``
        may have added a key since this process started: no restart needed)."""
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken:
            if self._reload is not None:
                keys = tuple(self._reload())
                if keys and keys != self._keys:
                    self._keys = keys
                    self._fernet = MultiFernet([Fernet(key) for key in keys])
                    return self.decrypt(token)
            raise ConfigError(
                "setting ENCRYPTION_KEYS: a stored password was encrypted under a key "
                "that is not configured"
            ) from None

    def rotate(self, token: str) -> str:
        """Re-encrypt ``token`` under the first key."""
        return self._fernet.rotate(token.encode("ascii")).decode("ascii")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


# The original DanceCats (2016) stored SHA-512(salt + password) as "HEX:SALT". An imported
# user keeps that hash under this tag until their first sign-in replaces it with argon2
# (``password_needs_rehash``): nobody has to choose a new password because of the move.
DANCECATS_SHA512 = "dancecats-sha512$"
_DANCECATS_HASH = re.compile(r"([0-9a-f]{128}):([^:$\s]{1,64})")


def from_dancecats_hash(stored: object) -> str | None:
    """The original's stored hash in the tagged form ``verify_password`` checks; None when
    ``stored`` is not in the original's format (that user sets a new password instead)."""
    found = _DANCECATS_HASH.fullmatch(stored) if isinstance(stored, str) else None
    if found is None:
        return None
    digest, salt = found.groups()
    return f"{DANCECATS_SHA512}{salt}${digest}"


def _verify_dancecats(password_hash: str, password: str) -> bool:
    salt, _, digest = password_hash.removeprefix(DANCECATS_SHA512).partition("$")
    mine = hashlib.sha512(salt.encode("utf-8") + password.encode("utf-8")).hexdigest()
    return hmac.compare_digest(mine, digest)


def verify_password(password_hash: str, password: str) -> bool:
    if password_hash.startswith(DANCECATS_SHA512):
        verify_nobody(password)  # the same argon2 cost: answer times tell no hash kinds apart
        return _verify_dancecats(password_hash, password)
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@functools.cache
def _nobody_hash() -> str:
    """The hash of a random password nobody knows, made with the same parameters."""
    return _hasher.hash(secrets.token_urlsafe(32))


def verify_nobody(password: str) -> None:
    """Spend what checking a real account's password costs, for an account that does not
    exist: a sign-in's answer time must not tell registered emails from unknown ones."""
    verify_password(_nobody_hash(), password)


def password_needs_rehash(password_hash: str) -> bool:
    if password_hash.startswith(DANCECATS_SHA512):
        return True
    return _hasher.check_needs_rehash(password_hash)


def new_token() -> str:
    """A fresh API token: a recognisable prefix and 256 random bits."""
    return "dct_" + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """SHA-256 suffices for 256-bit random tokens and keeps the lookup an indexed equality."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
