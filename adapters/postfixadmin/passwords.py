"""Password hashes in the form Dovecot reads from ``mailbox.password``: ``{SCHEME}hash``.

The ``{SCHEME}`` prefix makes Dovecot use that scheme whatever its ``default_pass_scheme``,
so the gateway's hashes log in next to PostfixAdmin's own (often bare ``$6$…``) ones.

* ``BLF-CRYPT``: bcrypt ``$2b$`` (the ``bcrypt`` package).
* ``SHA512-CRYPT``: ``$6$`` with 5,000 rounds, the glibc default that Dovecot and
  PostfixAdmin write, through libpass (the maintained passlib fork): the standard library's
  ``crypt`` is deprecated and gone in Python 3.13, and passlib's own default of 656,000 rounds
  would make every IMAP login slow.
* ``ARGON2ID``: argon2-cffi's defaults (libsodium, which Dovecot uses, reads them).

A mailbox created without a password (Entra's usual case) gets the bcrypt hash of 32 random
bytes that are thrown away: Postfix delivers to it, nobody can log in. Its safety rests on the
256 unknown bits, not on the hash's cost, so it is made at bcrypt's lowest cost (about 1 ms).

Hashing runs in a worker thread: a bcrypt of cost 10 takes tens of milliseconds.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Literal

import bcrypt
from argon2 import PasswordHasher
from passlib.hash import sha512_crypt  # type: ignore[import-untyped]

from adapters.base import Rejected

Scheme = Literal["BLF-CRYPT", "SHA512-CRYPT", "ARGON2ID"]
SCHEMES: tuple[Scheme, ...] = ("BLF-CRYPT", "SHA512-CRYPT", "ARGON2ID")
MAX_PASSWORD_BYTES = 1024
BCRYPT_MAX_BYTES = 72
"""bcrypt reads no further; a longer password is refused rather than silently cut."""


class PasswordHashing:
    def __init__(self, scheme: Scheme = "BLF-CRYPT", *, bcrypt_cost: int = 10, sha512_rounds: int = 5000) -> None:
        if scheme not in SCHEMES:
            raise ValueError(f"unknown password scheme {scheme!r}; known: {', '.join(SCHEMES)}")
        self.scheme = scheme
        self.bcrypt_cost = bcrypt_cost
        self._sha512 = sha512_crypt.using(rounds=sha512_rounds)
        self._argon2 = PasswordHasher()

    def __repr__(self) -> str:
        return f"PasswordHashing({self.scheme!r})"

    async def hash(self, password: object) -> str:
        """The stored form of a password a SCIM client sent."""
        if not isinstance(password, str) or not password:
            raise Rejected("password must be a non-empty string")
        encoded = password.encode()
        if "\0" in password or len(encoded) > MAX_PASSWORD_BYTES:
            raise Rejected(f"password must be at most {MAX_PASSWORD_BYTES} bytes without NUL characters")
        if self.scheme == "BLF-CRYPT" and len(encoded) > BCRYPT_MAX_BYTES:
            raise Rejected(f"password is longer than the {BCRYPT_MAX_BYTES} bytes BLF-CRYPT (bcrypt) can check")
        return await asyncio.to_thread(self._hash, password)

    def _hash(self, password: str) -> str:
        if self.scheme == "BLF-CRYPT":
            digest = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=self.bcrypt_cost)).decode()
        elif self.scheme == "SHA512-CRYPT":
            digest = str(self._sha512.hash(password))
        else:
            digest = self._argon2.hash(password)
        return f"{{{self.scheme}}}{digest}"

    @staticmethod
    async def unusable() -> str:
        """A hash no password matches: the mailbox receives mail, nobody logs in."""
        return await asyncio.to_thread(_unusable)


def _unusable() -> str:
    secret = secrets.token_urlsafe(32).encode()
    return "{BLF-CRYPT}" + bcrypt.hashpw(secret, bcrypt.gensalt(rounds=4)).decode()
