"""Local service-account identities: credentials whose bearer token names the account.

The official Google clients accept :class:`ServiceAccountIdentity` as ``credentials=``; every request
they send carries ``Authorization: Bearer local-sa:<email>``. The strict gateway reads the account
back with :func:`account_from_authorization`. Nothing is signed and nothing leaves the machine:
the token is a name, not a secret, and is only meaningful to the local strict layer (Google would
answer 401). No key files.
"""

from __future__ import annotations

import re
from typing import Any

from google.auth import credentials as ga_credentials

TOKEN_PREFIX = "local-sa:"
_EMAIL_RE = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+$")


class ServiceAccountIdentity(ga_credentials.Credentials):
    """Credentials of one service account on the local chain; the token never expires and needs no network."""

    def __init__(self, email: str) -> None:
        if not _EMAIL_RE.match(email or ""):
            raise ValueError(f"not a service account email: {email!r}")
        super().__init__()
        self._email = email
        self.token = TOKEN_PREFIX + email
        self.expiry = None

    @property
    def service_account_email(self) -> str:
        """The account these credentials act as."""
        return self._email

    @property
    def expired(self) -> bool:
        return False

    @property
    def valid(self) -> bool:
        return True

    def refresh(self, request: Any) -> None:
        """Nothing to fetch: the token is the account's name."""
        self.token = TOKEN_PREFIX + self._email

    def __repr__(self) -> str:
        return f"ServiceAccountIdentity({self._email!r})"


def token_for(email: str) -> str:
    """The bearer token :class:`ServiceAccountIdentity` sends for EMAIL (for non-Google clients, e.g. dbt)."""
    return TOKEN_PREFIX + ServiceAccountIdentity(email).service_account_email


def account_from_authorization(header: str | None) -> str | None:
    """The account named by an ``Authorization`` header value, or None when it names none.

    Only ``Bearer local-sa:<email>`` names an account; anything else (no header, anonymous clients,
    another kind of token) is None, which the gateway answers with 401.
    """
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.startswith(TOKEN_PREFIX):
        return None
    email = token[len(TOKEN_PREFIX) :].strip()
    return email if _EMAIL_RE.match(email) else None


def credentials_for(settings: Any) -> ga_credentials.Credentials:
    """The credentials a client of an emulator chain uses: the settings' identity, else anonymous."""
    if settings.identity:
        return ServiceAccountIdentity(settings.identity)
    return ga_credentials.AnonymousCredentials()
