"""A strict HTTP gateway in front of an emulator: IAM checks, Google's error shapes, an audit log.

``Gateway(upstream_url, kind, policy, audit_path).start()`` listens on a free localhost port and
returns its URL; point the official client there (``client_options={"api_endpoint": url}``) with
:class:`~.identity.ServiceAccountIdentity` credentials. Each request:

1. names an account (``Authorization: Bearer local-sa:<email>``), else 401 UNAUTHENTICATED;
2. is mapped by the kind's rules (:mod:`.gcs_rules`, :mod:`.bigquery_rules`) to the IAM
   permissions and resources it needs; each need is checked with :meth:`Policy.check` and written
   to the audit log; the first refused one answers 403 in Google's JSON error shape, naming the
   account, the permission and the resource. A request the rules do not know answers 501 (the
   layer refuses what it cannot check);
3. is forwarded to the emulator unchanged (the ``Host`` header is kept, so URLs the emulator puts
   in its answers point back at the gateway) and its answer relayed.

The rules also enforce what the emulators skip (412 for GCS preconditions, 409 for repeated
BigQuery job ids); see their modules for what is approximated.
"""

from __future__ import annotations

import http.client
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from .httpserve import AuditLog, LocalServer, Reply, Request, denied_message, error_reply
from .policy import Decision, Policy

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "content-length",
}

__all__ = ["Context", "Gateway", "Need", "Reply", "Request", "error_reply"]


@dataclass(frozen=True)
class Need:
    """One IAM permission a request needs on one resource (full resource name)."""

    permission: str
    resource: str
    granted_by: str | None = None  #: set when the rules themselves allow it (e.g. the job's creator)


class Context:
    """What rules may do: check needs (audited), forward to the emulator, read it directly."""

    def __init__(self, upstream: urllib.parse.SplitResult, policy: Policy, audit: AuditLog, timeout: float) -> None:
        self.host, self.port = upstream.hostname or "127.0.0.1", upstream.port or 80
        self.policy = policy
        self.audit = audit
        self.timeout = timeout

    def authorize(self, req: Request, needs: list[Need]) -> Reply | None:
        """None when every need is granted; else the 403 for the first that is not."""
        for need in needs:
            decision = (
                Decision(True, need.granted_by)
                if need.granted_by is not None
                else self.policy.check(req.account, need.permission, need.resource)
            )
            self.audit.write(
                req.account,
                req.method,
                req.path,
                need.permission,
                need.resource,
                decision.allowed,
                decision.granted_by,
                decision.binding,
            )
            if not decision.allowed:
                return error_reply(403, "forbidden", denied_message(req.account, need.permission, need.resource))
        return None

    def unmapped(self, req: Request) -> Reply:
        self.audit.write(req.account, req.method, req.path, None, None, False, None)
        return error_reply(
            501,
            "notImplemented",
            f"the strict layer has no IAM mapping for {req.method} {req.path}; it refuses what it cannot check",
        )

    def send(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request(method, target, body=body or None, headers=headers)
            answer = conn.getresponse()
            payload = answer.read()
            return Reply(
                answer.status, [(k, v) for k, v in answer.getheaders() if k.lower() not in HOP_BY_HOP], payload
            )
        finally:
            conn.close()

    def forward(self, req: Request) -> Reply:
        """The emulator's answer to REQ (the caller's Host kept, its Authorization dropped)."""
        headers = {k: v for k, v in req.headers.items() if k not in HOP_BY_HOP and k != "authorization"}
        return self.send(req.method, req.target, headers, req.body)

    def get_json(self, target: str) -> tuple[int, Any]:
        """GET TARGET from the emulator directly (no IAM: the gateway's own look-ups)."""
        reply = self.send("GET", target, {"Accept": "application/json"}, b"")
        return reply.status, reply.json()


class Rules(Protocol):
    def serve(self, req: Request, ctx: Context) -> Reply: ...


def rules_for(kind: str, project: str) -> Rules:
    if kind == "gcs":
        from .gcs_rules import GcsRules

        return GcsRules(project)
    if kind == "bigquery":
        from .bigquery_rules import BigQueryRules

        return BigQueryRules()
    raise ValueError(f"unknown gateway kind {kind!r}: expected 'gcs' or 'bigquery'")


class Gateway:
    """The strict layer in front of one emulator (module docstring); start() returns its URL."""

    def __init__(
        self,
        upstream_url: str,
        kind: Literal["gcs", "bigquery"],
        policy: Policy,
        audit_path: Path,
        *,
        port: int = 0,
        timeout: float = 600.0,
    ) -> None:
        self.upstream = urllib.parse.urlsplit(upstream_url.rstrip("/"))
        if self.upstream.scheme != "http" or not self.upstream.hostname:
            raise ValueError(f"upstream must be an http:// URL of an emulator, got {upstream_url!r}")
        self.kind = kind
        self.policy = policy
        self.rules = rules_for(kind, policy.resources.project)
        self.audit = AuditLog(audit_path, kind)
        self.context = Context(self.upstream, policy, self.audit, timeout)
        self.server = LocalServer(
            f"strict-{kind}-gateway", self._handle, self.audit, port=port, rewrite_header=self._rewrite_header
        )

    def _handle(self, req: Request) -> Reply:
        try:
            return self.rules.serve(req, self.context)
        except (OSError, http.client.HTTPException) as exc:
            return error_reply(502, "backendError", f"the emulator behind the strict layer failed: {exc}")

    def _rewrite_header(self, name: str, value: str) -> str:
        """Resumable-upload session URLs point at the gateway, not past it."""
        return value.replace(self.upstream.netloc, self.server.netloc) if name.lower() == "location" else value

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> str:
        return self.server.start()

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> Gateway:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
