"""BigQuery REST requests -> IAM permissions, and unique job ids (409), for the strict gateway.

Mapped (``/bigquery/v2/projects/P/...``; permissions as Google documents them per method):

- datasets: list ``resourcemanager.projects.get`` on the project (BigQuery filters the list by
  access; the emulator does not: approximated); insert ``bigquery.datasets.create`` on the
  project; get/patch/update/delete ``bigquery.datasets.get/update/delete`` on the dataset.
- tables: list ``bigquery.tables.list`` and insert ``bigquery.tables.create`` on the dataset;
  get/patch/update/delete ``bigquery.tables.get/update/delete``; ``tabledata.list``
  ``bigquery.tables.getData``; ``insertAll`` ``bigquery.tables.updateData`` on the table.
- jobs.insert / jobs.query: ``bigquery.jobs.create`` on the project, plus what the job touches:
  query jobs the tables their SQL names (:mod:`.sql_refs`: read -> ``getData``; INSERT ->
  ``updateData``; UPDATE/DELETE/MERGE -> ``updateData`` + ``getData``; CREATE TABLE/VIEW ->
  ``bigquery.tables.create`` on the dataset + ``updateData``; DROP -> ``bigquery.tables.delete``;
  TRUNCATE -> ``updateData``; ALTER -> ``bigquery.tables.update``; CREATE/DROP SCHEMA ->
  ``bigquery.datasets.create``/``delete``; INFORMATION_SCHEMA -> ``bigquery.tables.list``), a
  destination table ``updateData`` (+ ``bigquery.tables.create`` on its dataset when it does not
  exist yet); load jobs ``storage.objects.get`` on every ``gs://`` source as the caller (wildcards:
  ``storage.objects.list`` on the bucket) and the destination as above; extract jobs
  ``bigquery.tables.export`` and ``storage.objects.create`` on the URIs; copy jobs ``getData`` on
  the sources and the destination as above.
- jobs.get / getQueryResults / cancel: allowed to the job's creator (as in BigQuery); anyone else
  needs ``bigquery.jobs.get`` / ``bigquery.jobs.update`` on the project. The creator may also read
  the query's results table (in an anonymous dataset, ``_...``). Creators are remembered by this
  gateway only (a job made before it started needs ``bigquery.jobs.get``).

Load jobs from uploaded files: media and multipart uploads are mapped like jobs.insert; resumable
upload sessions are not (501).

A jobs.insert whose id this gateway has seen, or that the emulator already holds, is answered 409
``Already Exists: Job PROJECT:LOCATION.JOBID`` (the emulator accepts repeats); check and insert
are serialised per job id.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
from collections.abc import Callable

from .gateway import Context, Need, Reply, Request, error_reply
from .resources import dataset_name, object_name, project_name, table_name
from .sql_refs import table_uses

_P = r"^(?:/upload)?/bigquery/v2/projects/(?P<project>[^/]+)"
_ROUTES = [
    ("datasets", re.compile(_P + r"/datasets$")),
    ("dataset", re.compile(_P + r"/datasets/(?P<dataset>[^/]+)$")),
    ("tables", re.compile(_P + r"/datasets/(?P<dataset>[^/]+)/tables$")),
    ("routines", re.compile(_P + r"/datasets/(?P<dataset>[^/]+)/routines$")),
    ("table", re.compile(_P + r"/datasets/(?P<dataset>[^/]+)/tables/(?P<table>[^/]+)$")),
    ("tabledata", re.compile(_P + r"/datasets/(?P<dataset>[^/]+)/tables/(?P<table>[^/]+)/(?P<op>data|insertAll)$")),
    ("jobs", re.compile(_P + r"/jobs$")),
    ("job", re.compile(_P + r"/(?P<what>jobs|queries)/(?P<job>[^/]+)(?P<op>/cancel|/delete)?$")),
    ("queries", re.compile(_P + r"/queries$")),
]
_GS = re.compile(r"^gs://(?P<bucket>[^/]+)/(?P<name>.*)$")


def _table_of(ref: dict, project: str) -> tuple[str, str, str] | None:
    if not ref or not ref.get("datasetId") or not ref.get("tableId"):
        return None
    return ref.get("projectId") or project, ref["datasetId"], ref["tableId"].split("$", 1)[0]


class BigQueryRules:
    """See the module docstring."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._job_locks: dict[tuple[str, str], threading.Lock] = {}
        self._owners: dict[tuple[str, str], str] = {}  #: (project, job id) -> creator's email
        self._results: dict[str, str] = {}  #: results table resource -> creator's email
        self._handlers: dict[str, Callable[..., Reply | None]] = {
            "datasets": self._datasets,
            "dataset": self._dataset,
            "tables": self._tables,
            "routines": self._routines,
            "table": self._table,
            "tabledata": self._tabledata,
            "jobs": self._jobs_insert,
            "job": self._job,
            "queries": self._jobs_query,
        }

    def serve(self, req: Request, ctx: Context) -> Reply:
        for route, pattern in _ROUTES:
            match = pattern.match(req.path)
            if match:
                parts = {k: urllib.parse.unquote(v) for k, v in match.groupdict().items() if v is not None}
                reply = self._handlers[route](req, ctx, **parts)
                return reply if reply is not None else ctx.unmapped(req)
        return ctx.unmapped(req)

    def _simple(self, req: Request, ctx: Context, permission: str | None, resource: str) -> Reply | None:
        if permission is None:
            return None
        return ctx.authorize(req, [Need(permission, resource)]) or ctx.forward(req)

    # -- datasets and tables ----------------------------------------------------------------------
    def _datasets(self, req: Request, ctx: Context, project: str) -> Reply | None:
        permission = {"GET": "resourcemanager.projects.get", "POST": "bigquery.datasets.create"}.get(req.method)
        return self._simple(req, ctx, permission, project_name(project))

    def _dataset(self, req: Request, ctx: Context, project: str, dataset: str) -> Reply | None:
        permission = {
            "GET": "bigquery.datasets.get",
            "PATCH": "bigquery.datasets.update",
            "PUT": "bigquery.datasets.update",
            "DELETE": "bigquery.datasets.delete",
        }.get(req.method)
        return self._simple(req, ctx, permission, dataset_name(project, dataset))

    def _tables(self, req: Request, ctx: Context, project: str, dataset: str) -> Reply | None:
        permission = {"GET": "bigquery.tables.list", "POST": "bigquery.tables.create"}.get(req.method)
        return self._simple(req, ctx, permission, dataset_name(project, dataset))

    def _routines(self, req: Request, ctx: Context, project: str, dataset: str) -> Reply | None:
        # dbt lists a dataset's routines when it lists relations
        permission = {"GET": "bigquery.routines.list", "POST": "bigquery.routines.create"}.get(req.method)
        return self._simple(req, ctx, permission, dataset_name(project, dataset))

    def _table(self, req: Request, ctx: Context, project: str, dataset: str, table: str) -> Reply | None:
        permission = {
            "GET": "bigquery.tables.get",
            "PATCH": "bigquery.tables.update",
            "PUT": "bigquery.tables.update",
            "DELETE": "bigquery.tables.delete",
        }.get(req.method)
        return self._with_results(req, ctx, permission, table_name(project, dataset, table))

    def _tabledata(self, req: Request, ctx: Context, project: str, dataset: str, table: str, op: str) -> Reply | None:
        permission = {
            ("GET", "data"): "bigquery.tables.getData",
            ("POST", "insertAll"): "bigquery.tables.updateData",
        }.get((req.method, op))
        return self._with_results(req, ctx, permission, table_name(project, dataset, table))

    def _with_results(self, req: Request, ctx: Context, permission: str | None, resource: str) -> Reply | None:
        if permission is None:
            return None
        creator = self._results.get(resource)
        if creator == req.account and permission in ("bigquery.tables.get", "bigquery.tables.getData"):
            return ctx.authorize(
                req, [Need(permission, resource, "creator of the query job that wrote it")]
            ) or ctx.forward(req)
        return self._simple(req, ctx, permission, resource)

    # -- jobs -------------------------------------------------------------------------------------
    def _job(self, req: Request, ctx: Context, project: str, what: str, job: str, op: str = "") -> Reply | None:
        permission = {
            ("GET", ""): "bigquery.jobs.get",
            ("POST", "/cancel"): "bigquery.jobs.update",
            ("DELETE", "/delete"): "bigquery.jobs.delete",
            ("DELETE", ""): "bigquery.jobs.delete",
        }.get((req.method, op))
        if permission is None:
            return None
        if self._owners.get((project, job)) == req.account and permission != "bigquery.jobs.delete":
            need = Need(permission, f"{project_name(project)}/jobs/{job}", "creator of the job")
        else:
            need = Need(permission, project_name(project))
        denied = ctx.authorize(req, [need])
        if denied is not None:
            return denied
        reply = ctx.forward(req)
        if need.granted_by is not None and what == "jobs":  # the creator may read the results table it names
            self._remember_results(reply, project, req.account)
        return reply

    def _job_lock(self, project: str, job: str) -> threading.Lock:
        with self._guard:
            return self._job_locks.setdefault((project, job), threading.Lock())

    def _jobs_insert(self, req: Request, ctx: Context, project: str) -> Reply | None:
        if req.method != "POST":
            return None
        body = req.json() if not req.path.startswith("/upload/") else self._upload_metadata(req)
        needs = [Need("bigquery.jobs.create", project_name(project))] + self._job_needs(ctx, body, project)
        denied = ctx.authorize(req, needs)
        if denied is not None:
            return denied
        reference = body.get("jobReference") or {}
        job_id = reference.get("jobId")
        if body.get("configuration", {}).get("dryRun"):  # a dry run creates no job
            return ctx.forward(req)
        if not job_id:
            return self._record(req, ctx.forward(req), project)
        location = reference.get("location") or "US"
        with self._job_lock(project, job_id):
            status, _ = ctx.get_json(
                f"/bigquery/v2/projects/{urllib.parse.quote(project)}/jobs/"
                f"{urllib.parse.quote(job_id)}?location={urllib.parse.quote(location)}"
            )
            if (project, job_id) in self._owners or status == 200:
                return error_reply(409, "duplicate", f"Already Exists: Job {project}:{location}.{job_id}")
            return self._record(req, ctx.forward(req), project)

    def _jobs_query(self, req: Request, ctx: Context, project: str) -> Reply | None:
        if req.method != "POST":
            return None
        body = req.json()
        config = {"query": {"query": body.get("query", ""), "defaultDataset": body.get("defaultDataset")}}
        needs = [Need("bigquery.jobs.create", project_name(project))] + self._job_needs(
            ctx, {"configuration": config}, project
        )
        return ctx.authorize(req, needs) or self._record(req, ctx.forward(req), project)

    def _record(self, req: Request, reply: Reply, project: str) -> Reply:
        """Remember who created the job the emulator accepted, and its results table."""
        if 200 <= reply.status < 300:
            job_id = (reply.json().get("jobReference") or {}).get("jobId")
            if job_id:
                with self._guard:
                    self._owners[(project, job_id)] = req.account
            self._remember_results(reply, project, req.account)
        return reply

    def _remember_results(self, reply: Reply, project: str, account: str) -> None:
        if not 200 <= reply.status < 300:
            return
        query = (reply.json().get("configuration") or {}).get("query") or {}
        dest = _table_of(query.get("destinationTable") or {}, project)
        if dest and dest[1].startswith("_"):  # an anonymous results dataset, not a table the caller named
            with self._guard:
                self._results[table_name(*dest)] = account

    @staticmethod
    def _upload_metadata(req: Request) -> dict:
        """The job resource of a media/multipart load upload (its JSON part)."""
        start = req.body.find(b"{")
        if start < 0:
            return {}
        try:
            return json.JSONDecoder().raw_decode(req.body[start:].decode("utf-8", "replace"))[0]
        except ValueError:
            return {}

    def _destination(self, ctx: Context, ref: dict | None, project: str) -> list[Need]:
        dest = _table_of(ref or {}, project)
        if dest is None:
            return []
        needs = [Need("bigquery.tables.updateData", table_name(*dest))]
        status, _ = ctx.get_json(
            "/bigquery/v2/projects/{}/datasets/{}/tables/{}".format(
                *(urllib.parse.quote(part, safe="") for part in dest)
            )
        )
        if status == 404:
            needs.insert(0, Need("bigquery.tables.create", dataset_name(dest[0], dest[1])))
        return needs

    def _job_needs(self, ctx: Context, body: dict, project: str) -> list[Need]:
        config = body.get("configuration") or {}
        needs: list[Need] = []
        if "query" in config:
            query = config["query"] or {}
            needs += self._sql_needs(query.get("query", ""), project)
            needs += self._destination(ctx, query.get("destinationTable"), project)
        if "load" in config:
            load = config["load"] or {}
            for uri in load.get("sourceUris") or []:
                match = _GS.match(uri)
                if match and "*" in match["name"]:
                    needs.append(Need("storage.objects.list", f"projects/_/buckets/{match['bucket']}"))
                    needs.append(
                        Need("storage.objects.get", object_name(match["bucket"], match["name"].split("*", 1)[0]))
                    )
                elif match:
                    needs.append(Need("storage.objects.get", object_name(match["bucket"], match["name"])))
            needs += self._destination(ctx, load.get("destinationTable"), project)
        if "extract" in config:
            extract = config["extract"] or {}
            source = _table_of(extract.get("sourceTable") or {}, project)
            if source:
                needs.append(Need("bigquery.tables.export", table_name(*source)))
            for uri in extract.get("destinationUris") or []:
                match = _GS.match(uri)
                if match:
                    needs.append(Need("storage.objects.create", object_name(match["bucket"], match["name"])))
        if "copy" in config:
            copy = config["copy"] or {}
            for ref in (copy.get("sourceTables") or []) + ([copy["sourceTable"]] if copy.get("sourceTable") else []):
                source = _table_of(ref, project)
                if source:
                    needs.append(Need("bigquery.tables.getData", table_name(*source)))
            needs += self._destination(ctx, copy.get("destinationTable"), project)
        return needs

    @staticmethod
    def _sql_needs(sql: str, project: str) -> list[Need]:
        needs: list[Need] = []
        for use in table_uses(sql, project):
            if use.kind == "dataset_create":
                needs.append(Need("bigquery.datasets.create", project_name(use.project)))
                continue
            if use.kind == "dataset_drop":
                needs.append(Need("bigquery.datasets.delete", dataset_name(use.project, use.dataset)))
                continue
            if use.kind == "metadata":
                scope = dataset_name(use.project, use.dataset) if use.dataset else project_name(use.project)
                needs.append(Need("bigquery.tables.list", scope))
                continue
            table = table_name(use.project, use.dataset, use.table or "")
            permissions = {
                "read": ["bigquery.tables.getData"],
                "insert": ["bigquery.tables.updateData"],
                "modify": ["bigquery.tables.updateData", "bigquery.tables.getData"],
                "create": ["bigquery.tables.updateData"],
                "drop": ["bigquery.tables.delete"],
                "truncate": ["bigquery.tables.updateData"],
                "alter": ["bigquery.tables.update"],
            }[use.kind]
            if use.kind == "create":
                needs.append(Need("bigquery.tables.create", dataset_name(use.project, use.dataset)))
            needs += [Need(p, table) for p in permissions]
        unique: list[Need] = []
        for need in needs:
            if need not in unique:
                unique.append(need)
        return unique
