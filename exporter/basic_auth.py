"""HTTP basic auth against bcrypt hashes (the exporter toolkit's `basic_auth_users`).

bcrypt is slow on purpose (~70 ms at cost 10), so credentials that passed are remembered, as the toolkit does:
a Prometheus scraping every second pays bcrypt once, not every scrape. Only a digest of the header is kept, never
the password, and only successes, so wrong guesses cannot fill the memory."""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
from typing import Mapping

import bcrypt

REALM = "llm-dvfs exporter"
REMEMBERED = 64  # distinct passing credentials kept; more is a misconfiguration, and bcrypt just runs again


class BasicAuth:
    """Checks `Authorization` header values; `remembered` is instant, `verify` may run bcrypt (call it off the
    event loop)."""

    def __init__(self, users: Mapping[str, bytes]) -> None:
        self._users = dict(users)
        self._any_hash = next(iter(self._users.values()))  # an unknown user still pays one bcrypt: no user oracle
        self._passed: dict[bytes, None] = {}  # insertion-ordered set of header digests
        self._lock = threading.Lock()

    @property
    def challenge(self) -> str:
        return f'Basic realm="{REALM}", charset="UTF-8"'

    def remembered(self, header: str | None) -> bool:
        if not header:
            return False
        with self._lock:
            return _digest(header) in self._passed

    def verify(self, header: str | None) -> bool:
        credentials = _credentials(header)
        if credentials is None:
            return False
        user, password = credentials
        hashed = self._users.get(user)
        try:
            ok = bcrypt.checkpw(password, hashed or self._any_hash) and hashed is not None
        except ValueError:  # longer than bcrypt's 72 bytes, or a hash bcrypt rejects
            ok = False
        if ok:
            with self._lock:
                if len(self._passed) >= REMEMBERED:
                    self._passed.pop(next(iter(self._passed)))
                self._passed[_digest(header)] = None
        return ok


def _digest(header: str) -> bytes:
    return hashlib.sha256(header.encode("utf-8", "surrogateescape")).digest()


def _credentials(header: str | None) -> tuple[str, bytes] | None:
    """(user, password) from `Basic base64(user:password)`, or None when the header is absent or malformed."""
    scheme, _, token = (header or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(token.strip(), validate=True).partition(b":")
        return (user.decode("utf-8"), password) if sep else None
    except (binascii.Error, UnicodeDecodeError):
        return None
