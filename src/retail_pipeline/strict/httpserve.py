"""HTTP plumbing shared by the strict gateway and the Cloud Run stand-in.

:class:`LocalServer` is a threaded HTTP/1.1 server on a free localhost port that turns each
request into a :class:`Request`, asks an authenticating front (the bearer token must name a local
service account, else 401) and a handler for a :class:`Reply`, and sends it. :class:`AuditLog`
appends one JSON line per IAM decision. ``GET /readyz`` (:data:`HEALTH_PATH`) is the one request
answered without a token and without an audit line: a liveness probe that names no resource and
returns no data (what later commands use to see whether a home's chain is still running).
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ..identity import account_from_authorization

LOCALHOST = "127.0.0.1"
HEALTH_PATH = "/readyz"  #: liveness probe: no token needed, no data returned, not audited
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    412: "FAILED_PRECONDITION",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
}


@dataclass
class Request:
    method: str
    target: str  #: path and query as sent
    path: str  #: path only, still percent-encoded
    query: dict[str, list[str]]
    headers: dict[str, str]  #: lower-case names
    body: bytes
    account: str = ""  #: the service account the bearer token names

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"{}")
        except ValueError:
            return {}


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"{}")
        except ValueError:
            return {}


def error_reply(code: int, reason: str, message: str) -> Reply:
    """Google's JSON error body (what google-api-core turns into its exception classes)."""
    body = {
        "error": {
            "code": code,
            "message": message,
            "status": STATUS_NAMES.get(code, "UNKNOWN"),
            "errors": [{"message": message, "domain": "global", "reason": reason}],
        }
    }
    return json_reply(code, body)


def json_reply(status: int, body: Any) -> Reply:
    return Reply(status, [("Content-Type", "application/json; charset=UTF-8")], json.dumps(body).encode())


def denied_message(account: str, permission: str, resource: str) -> str:
    return (
        f"{account} does not have {permission} access to {resource}. Permission '{permission}' denied on "
        "resource (or it may not exist)."
    )


class AuditLog:
    """Appends one JSON line per decision: time, service, account, method, path, permission, resource,
    allowed, granted_by, binding (the Terraform address of the grant, when one granted it)."""

    def __init__(self, path: Path, service: str) -> None:
        self.path = Path(path)
        self.service = service
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(
        self,
        account: str | None,
        method: str,
        path: str,
        permission: str | None,
        resource: str | None,
        allowed: bool,
        granted_by: str | None,
        binding: str | None = None,
    ) -> None:
        line = json.dumps(
            {
                "time": datetime.now(UTC).isoformat(),
                "service": self.service,
                "account": account,
                "method": method,
                "path": path,
                "permission": permission,
                "resource": resource,
                "allowed": allowed,
                "granted_by": granted_by,
                "binding": binding,
            }
        )
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")


Handler = Callable[[Request], Reply]


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # the audit log is the record
        pass

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        req = Request(
            self.command,
            self.path,
            parsed.path,
            urllib.parse.parse_qs(parsed.query, keep_blank_values=True),
            {k.lower(): v for k, v in self.headers.items()},
            self._read_body(),
        )
        local = self.server.local
        account = account_from_authorization(req.headers.get("authorization"))
        if req.method == "GET" and req.path == HEALTH_PATH:
            reply = Reply(200, [("Content-Type", "text/plain")], b"ok\n")
        elif account is None:
            local.audit.write(None, req.method, req.path, None, None, False, None)
            reply = error_reply(
                401,
                "required",
                "Request is missing required authentication credential: expected "
                "'Authorization: Bearer local-sa:<service account email>' (strict layer).",
            )
        else:
            req.account = account
            reply = local.handler(req)
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, local.rewrite_header(name, value))
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    local: LocalServer


class LocalServer:
    """A threaded HTTP server on localhost; start() returns its URL, stop() ends it."""

    def __init__(
        self,
        name: str,
        handler: Handler,
        audit: AuditLog,
        *,
        port: int = 0,
        rewrite_header: Callable[[str, str], str] = lambda name, value: value,
    ) -> None:
        self.name = name
        self.handler = handler
        self.audit = audit
        self.port = port
        self.rewrite_header = rewrite_header
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def netloc(self) -> str:
        return f"{LOCALHOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.netloc}"

    def start(self) -> str:
        if self._server is None:
            server = _Server((LOCALHOST, self.port), _RequestHandler)
            server.local = self
            self.port = server.server_address[1]
            self._server = server
            self._thread = threading.Thread(target=server.serve_forever, name=self.name, daemon=True)
            self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None
