"""Cloud Storage JSON API requests -> IAM permissions, and the generation preconditions GCS enforces.

Mapped (``/storage/v1``, ``/upload/storage/v1``, ``/download/storage/v1``):

- buckets: list and insert need ``storage.buckets.list`` / ``storage.buckets.create`` on the project
  (``?project=``); get/patch/update/delete ``storage.buckets.get/update/delete`` on the bucket;
  ``.../iam`` get/set ``storage.buckets.getIamPolicy/setIamPolicy``.
- objects: list ``storage.objects.list`` on the bucket (so a ``startsWith`` condition on object
  names never grants it, as in GCS); get, ``alt=media`` and ``/download`` ``storage.objects.get``;
  delete ``storage.objects.delete``; patch/update ``storage.objects.update``; uploads (media,
  multipart, resumable: checked when the session starts and again on each chunk)
  ``storage.objects.create``, plus ``storage.objects.delete`` when an object of that name exists
  (an overwrite, as in GCS); copy/rewrite ``get`` on the source and ``create`` (+ ``delete``) on the
  destination; compose ``get`` on each source and ``create`` (+ ``delete``) on the destination.

Preconditions (``ifGenerationMatch``, ``ifGenerationNotMatch``, ``ifMetagenerationMatch``,
``ifMetagenerationNotMatch``) are checked against the object's current generation under a lock per
object, together with the forwarded write, so of two racing creators with ``ifGenerationMatch=0``
exactly one wins and the other gets 412 conditionNotMet. Approximations: the lock is per gateway
(one gateway per emulator); permission is checked before the precondition, and the overwrite's
``storage.objects.delete`` only when the precondition holds; batch requests are not mapped (501).
"""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable

from .gateway import Context, Need, Reply, Request, error_reply
from .resources import bucket_name, object_name, project_name

_B = r"(?P<bucket>[^/]+)"
_ROUTES = [
    ("buckets", re.compile(r"^/storage/v1/b$")),
    ("bucket_iam", re.compile(rf"^/storage/v1/b/{_B}/iam(?P<test>/testPermissions)?$")),
    ("bucket", re.compile(rf"^/storage/v1/b/{_B}$")),
    ("objects", re.compile(rf"^/storage/v1/b/{_B}/o$")),
    (
        "copy",
        re.compile(
            rf"^/storage/v1/b/{_B}/o/(?P<name>.+)/(copyTo|rewriteTo)/b/(?P<dbucket>[^/]+)"
            r"/o/(?P<dname>.+)$"
        ),
    ),
    ("compose", re.compile(rf"^/storage/v1/b/{_B}/o/(?P<name>.+)/compose$")),
    ("object", re.compile(rf"^/storage/v1/b/{_B}/o/(?P<name>.+)$")),
    ("download", re.compile(rf"^/download/storage/v1/b/{_B}/o/(?P<name>.+)$")),
    ("upload", re.compile(rf"^/upload/storage/v1/b/{_B}/o$")),
]
PRECONDITION_FAILED = "At least one of the pre-conditions you specified did not hold."


def precondition_holds(query: dict[str, list[str]], current: dict | None) -> bool:
    """Do the request's generation preconditions hold for CURRENT (the object's metadata, None if absent)?"""

    def value(name: str) -> int | None:
        raw = query.get(name)
        return int(raw[0]) if raw and raw[0] != "" else None

    generation = int(current["generation"]) if current else None
    metageneration = int(current.get("metageneration", 1)) if current else None
    match, not_match = value("ifGenerationMatch"), value("ifGenerationNotMatch")
    meta_match, meta_not_match = value("ifMetagenerationMatch"), value("ifMetagenerationNotMatch")
    if match is not None and ((generation is None and match != 0) or (generation is not None and generation != match)):
        return False
    if not_match is not None and ((generation is None and not_match == 0) or generation == not_match):
        return False
    if meta_match is not None and metageneration != meta_match:
        return False
    return not (meta_not_match is not None and metageneration is not None and metageneration == meta_not_match)


def _multipart_metadata(req: Request) -> dict:
    """The JSON metadata part of a multipart upload (its first part)."""
    boundary = re.search(r'boundary="?([^";]+)"?', req.headers.get("content-type", ""))
    if not boundary:
        return {}
    for part in req.body.split(b"--" + boundary[1].encode()):
        head, sep, payload = part.partition(b"\r\n\r\n")
        if sep and b"json" in head.lower():
            try:
                return json.loads(payload.strip())
            except ValueError:
                return {}
    return {}


class GcsRules:
    """See the module docstring."""

    def __init__(self, project: str) -> None:
        self.project = project
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._sessions: OrderedDict[str, tuple[str, str, dict[str, list[str]]]] = OrderedDict()
        self._handlers: dict[str, Callable[..., Reply | None]] = {
            "buckets": self._buckets,
            "bucket_iam": self._bucket_iam,
            "bucket": self._bucket,
            "objects": self._objects,
            "copy": self._copy,
            "compose": self._compose,
            "object": self._object,
            "download": self._download,
            "upload": self._upload,
        }

    def lock(self, bucket: str, name: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault((bucket, name), threading.Lock())

    # -- dispatch ---------------------------------------------------------------------------------
    def serve(self, req: Request, ctx: Context) -> Reply:
        for route, pattern in _ROUTES:
            match = pattern.match(req.path)
            if match:
                parts = {k: urllib.parse.unquote(v) for k, v in match.groupdict().items() if v is not None}
                reply = self._handlers[route](req, ctx, **parts)
                return reply if reply is not None else ctx.unmapped(req)
        return ctx.unmapped(req)

    def _simple(self, req: Request, ctx: Context, needs: list[Need]) -> Reply:
        return ctx.authorize(req, needs) or ctx.forward(req)

    def _buckets(self, req: Request, ctx: Context) -> Reply | None:
        project = project_name(req.param("project") or self.project)
        permission = {"GET": "storage.buckets.list", "POST": "storage.buckets.create"}.get(req.method)
        return self._simple(req, ctx, [Need(permission, project)]) if permission else None

    def _bucket(self, req: Request, ctx: Context, bucket: str) -> Reply | None:
        permission = {
            "GET": "storage.buckets.get",
            "PATCH": "storage.buckets.update",
            "PUT": "storage.buckets.update",
            "DELETE": "storage.buckets.delete",
        }.get(req.method)
        return self._simple(req, ctx, [Need(permission, bucket_name(bucket))]) if permission else None

    def _bucket_iam(self, req: Request, ctx: Context, bucket: str, test: str | None = None) -> Reply | None:
        if test:  # testIamPermissions needs no permission; answer what the policy grants, not the emulator
            asked = req.query.get("permissions", [])
            granted = [p for p in asked if ctx.policy.check(req.account, p, bucket_name(bucket)).allowed]
            return Reply(
                200,
                [("Content-Type", "application/json")],
                json.dumps({"kind": "storage#testIamPermissionsResponse", "permissions": granted}).encode(),
            )
        permission = {"GET": "storage.buckets.getIamPolicy", "PUT": "storage.buckets.setIamPolicy"}.get(req.method)
        return self._simple(req, ctx, [Need(permission, bucket_name(bucket))]) if permission else None

    def _objects(self, req: Request, ctx: Context, bucket: str) -> Reply | None:
        if req.method != "GET":
            return None
        return self._simple(req, ctx, [Need("storage.objects.list", bucket_name(bucket))])

    def _object(self, req: Request, ctx: Context, bucket: str, name: str) -> Reply | None:
        if req.method == "GET":
            return self._simple(req, ctx, [Need("storage.objects.get", object_name(bucket, name))])
        permission = {
            "DELETE": "storage.objects.delete",
            "PATCH": "storage.objects.update",
            "PUT": "storage.objects.update",
        }.get(req.method)
        if permission is None:
            return None
        return self._write(req, ctx, bucket, name, [Need(permission, object_name(bucket, name))], overwrite=False)

    def _download(self, req: Request, ctx: Context, bucket: str, name: str) -> Reply | None:
        if req.method != "GET":
            return None
        return self._simple(req, ctx, [Need("storage.objects.get", object_name(bucket, name))])

    def _copy(self, req: Request, ctx: Context, bucket: str, name: str, dbucket: str, dname: str) -> Reply | None:
        if req.method != "POST":
            return None
        needs = [
            Need("storage.objects.get", object_name(bucket, name)),
            Need("storage.objects.create", object_name(dbucket, dname)),
        ]
        return self._write(req, ctx, dbucket, dname, needs, overwrite=True)

    def _compose(self, req: Request, ctx: Context, bucket: str, name: str) -> Reply | None:
        if req.method != "POST":
            return None
        sources = [s.get("name", "") for s in req.json().get("sourceObjects", [])]
        needs = [Need("storage.objects.get", object_name(bucket, s)) for s in sources]
        needs.append(Need("storage.objects.create", object_name(bucket, name)))
        return self._write(req, ctx, bucket, name, needs, overwrite=True)

    def _upload(self, req: Request, ctx: Context, bucket: str) -> Reply | None:
        upload_id = req.param("upload_id")
        if upload_id is not None:  # a resumable session's chunk (PUT; the emulator also takes POST)
            with self._locks_guard:
                session = self._sessions.get(upload_id)
            if session is None:
                return error_reply(404, "notFound", f"No such upload session: {upload_id}")
            _, name, query = session
            return self._write(
                req,
                ctx,
                bucket,
                name,
                [Need("storage.objects.create", object_name(bucket, name))],
                overwrite=True,
                query=query,
            )
        if req.method != "POST":
            return None
        kind = req.param("uploadType") or "media"
        name = req.param("name") or str(
            (_multipart_metadata(req) if kind == "multipart" else req.json()).get("name") or ""
        )
        if not name:
            return error_reply(400, "required", "Required parameter: name")
        reply = self._write(
            req,
            ctx,
            bucket,
            name,
            [Need("storage.objects.create", object_name(bucket, name))],
            overwrite=kind != "resumable",
            starts_session=kind == "resumable",
        )
        if kind == "resumable" and reply.status == 200:
            location = {k.lower(): v for k, v in reply.headers}.get("location", "")
            session_id = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query).get("upload_id")
            if session_id:
                with self._locks_guard:
                    self._sessions[session_id[0]] = (bucket, name, req.query)
                    while len(self._sessions) > 10000:
                        self._sessions.popitem(last=False)
        return reply

    # -- writes -----------------------------------------------------------------------------------
    def current(self, ctx: Context, bucket: str, name: str) -> dict | None:
        """The object's metadata on the emulator, or None when there is no such object."""
        status, body = ctx.get_json(
            f"/storage/v1/b/{urllib.parse.quote(bucket, safe='')}/o/{urllib.parse.quote(name, safe='')}"
        )
        return body if status == 200 else None

    def _write(
        self,
        req: Request,
        ctx: Context,
        bucket: str,
        name: str,
        needs: list[Need],
        *,
        overwrite: bool,
        query: dict[str, list[str]] | None = None,
        starts_session: bool = False,
    ) -> Reply:
        """Check NEEDS, then, holding the object's lock: preconditions, the overwrite's delete, forward.

        OVERWRITE: the request writes the object's content (an existing object then also needs
        ``storage.objects.delete``); STARTS_SESSION: a resumable upload starts (nothing written yet,
        preconditions checked early as GCS does)."""
        denied = ctx.authorize(req, needs)
        if denied is not None:
            return denied
        with self.lock(bucket, name):
            current = self.current(ctx, bucket, name)
            if current is None and not (overwrite or starts_session):  # delete/patch of a missing object: 404
                return ctx.forward(req)
            if not precondition_holds(query if query is not None else req.query, current):
                return error_reply(412, "conditionNotMet", PRECONDITION_FAILED)
            if overwrite and current is not None:
                denied = ctx.authorize(req, [Need("storage.objects.delete", object_name(bucket, name))])
                if denied is not None:
                    return denied
            return ctx.forward(req)
