"""Who a process is on the emulator chain: a service account named by its bearer token.

In Google Cloud a function runs as its service account through Application Default Credentials.
On the emulator chain each function server and the dbt job get ``settings.identity`` (the email of
the account Terraform gives them); their clients send ``Authorization: Bearer local-sa:<email>``,
and the strict gateway (:mod:`retail_pipeline.strict`) answers as Google would for that account.
No key, no network, no expiry.
"""

from __future__ import annotations

from typing import Any

from google.auth import credentials as ga_credentials

TOKEN_PREFIX = "local-sa:"


class ServiceAccountIdentity(ga_credentials.Credentials):
    """Credentials whose bearer token names a service account (emulator chain only)."""

    def __init__(self, email: str) -> None:
        super().__init__()
        self.email = email
        self.token = TOKEN_PREFIX + email

    def refresh(self, request: Any) -> None:
        self.token = TOKEN_PREFIX + self.email

    @property
    def expired(self) -> bool:
        return False

    @property
    def valid(self) -> bool:
        return True


def account_from_token(authorization: str | None) -> str | None:
    """The email an ``Authorization`` header names, or None."""
    if not authorization or not authorization.startswith("Bearer "):
        return None
    token = authorization[len("Bearer "):].strip()
    return token[len(TOKEN_PREFIX):] if token.startswith(TOKEN_PREFIX) else None


def credentials_for(settings: Any) -> ga_credentials.Credentials:
    """The identity's credentials, or anonymous ones where the settings name no identity."""
    if settings.identity:
        return ServiceAccountIdentity(settings.identity)
    return ga_credentials.AnonymousCredentials()
