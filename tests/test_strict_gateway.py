"""The strict gateway in front of the real GCS and BigQuery emulators, driven by the official clients.

Two policies: the grants of terraform/*.tf (for invariants that hold whatever the grants become:
load never writes the landing bucket, dbt never writes raw tables, no function creates datasets),
and small HCL snippets for tests that need one specific grant (a condition, a role without delete).
"""

from __future__ import annotations

import io
import json
import threading
import uuid
from pathlib import Path

import pytest
import requests
from google.api_core import exceptions as gx
from google.cloud import bigquery, storage

from retail_pipeline.identity import ServiceAccountIdentity
from retail_pipeline.strict.gateway import Gateway
from retail_pipeline.strict.policy import Policy
from retail_pipeline.strict.resources import ResourceMap

pytestmark = pytest.mark.emulator

REPO = Path(__file__).resolve().parents[1]

SNIPPET = """
locals {
  reports = "projects/_/buckets/${google_storage_bucket.landing.name}/objects/rejected/"
  ingest = "serviceAccount:${google_service_account.function["ingest"].email}"
  load   = "serviceAccount:${google_service_account.function["load"].email}"
}
# today's iam.tf: ingest reads landing and writes only its rejected/ reports there; the lake is
# written by ingest and read by load; transform has no role on the lake (issue 11's first defect).
resource "google_storage_bucket_iam_member" "ingest_reads_landing" {
  bucket = google_storage_bucket.landing.name
  role   = "roles/storage.objectViewer"
  member = local.ingest
}
resource "google_storage_bucket_iam_member" "ingest_writes_rejected_reports" {
  bucket = google_storage_bucket.landing.name
  role   = "roles/storage.objectUser"
  member = local.ingest
  condition {
    title      = "rejected-reports-only"
    expression = "resource.name.startsWith(\\"${local.reports}\\")"
  }
}
resource "google_storage_bucket_iam_member" "ingest_writes_lake" {
  bucket = google_storage_bucket.lake.name
  role   = "roles/storage.objectUser"
  member = local.ingest
}
# load may create lake objects but not replace or delete them
resource "google_storage_bucket_iam_member" "load_creates_in_lake" {
  bucket = google_storage_bucket.lake.name
  role   = "roles/storage.objectCreator"
  member = local.load
}
# transform may run BigQuery jobs and write the pipeline dataset, but has no role on the lake
resource "google_bigquery_dataset_iam_member" "transform_writes_pipeline" {
  dataset_id = google_bigquery_dataset.pipeline.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = "serviceAccount:${google_service_account.function["transform"].email}"
}
resource "google_project_iam_member" "transform_jobs" {
  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = "serviceAccount:${google_service_account.function["transform"].email}"
}
"""


@pytest.fixture(scope="module")
def chain(emulators, tmp_path_factory):
    """Buckets and datasets of this module (made by the admin), gateways with both policies."""
    tag = "s" + uuid.uuid4().hex[:8]
    rmap = ResourceMap.for_chain(
        emulators.project, f"{tag}-landing", f"{tag}-lake", tag, "partition-loaded", "retail-dbt"
    )
    audit = tmp_path_factory.mktemp("audit") / "audit.jsonl"
    terraform, snippet = Policy.from_terraform(REPO / "terraform", rmap), Policy.from_hcl(SNIPPET, rmap)
    gateways = {
        (kind, name): Gateway(upstream, kind, policy, audit)
        for kind, upstream in (("gcs", emulators.gcs_url), ("bigquery", emulators.bq_url))
        for name, policy in (("terraform", terraform), ("snippet", snippet))
    }
    for gateway in gateways.values():
        gateway.start()
    chain = Chain(rmap, gateways, audit, tag)
    admin = chain.storage("admin")
    for bucket in (f"{tag}-landing", f"{tag}-lake"):
        admin.create_bucket(bucket)
    bq = chain.bigquery("admin")
    for suffix in ("raw", "pipeline", "analytics"):
        bq.create_dataset(f"{rmap.project}.{tag}_{suffix}")
    bq.create_table(bigquery.Table(f"{rmap.project}.{tag}_raw.lines", schema=[bigquery.SchemaField("n", "INT64")]))
    yield chain
    for gateway in gateways.values():
        gateway.stop()


class Chain:
    def __init__(self, rmap: ResourceMap, gateways: dict, audit: Path, tag: str) -> None:
        self.rmap, self.gateways, self.audit, self.tag = rmap, gateways, audit, tag
        self.project = rmap.project
        self.landing, self.lake = f"{tag}-landing", f"{tag}-lake"

    def storage(self, who: str, policy: str = "terraform") -> storage.Client:
        return storage.Client(
            project=self.project,
            credentials=ServiceAccountIdentity(self.rmap.email(who)),
            client_options={"api_endpoint": self.gateways[("gcs", policy)].url},
        )

    def bigquery(self, who: str, policy: str = "terraform") -> bigquery.Client:
        return bigquery.Client(
            project=self.project,
            credentials=ServiceAccountIdentity(self.rmap.email(who)),
            location="EU",
            client_options={"api_endpoint": self.gateways[("bigquery", policy)].url},
        )

    def table(self, dataset: str, table: str) -> str:
        return f"{self.project}.{self.tag}_{dataset}.{table}"

    def audit_rows(self) -> list[dict]:
        return [json.loads(line) for line in self.audit.read_text().splitlines()]


def _assert_names(exc: Exception, account: str, permission: str, resource: str) -> None:
    message = str(exc)
    assert account in message and f"'{permission}'" in message and resource in message, message


# --- Cloud Storage ----------------------------------------------------------------------------


def test_granted_storage_calls_pass_and_are_audited(chain):
    chain.storage("ingest").bucket(chain.lake).blob("sales/2011-01.parquet").upload_from_string(b"parquet bytes")
    reader = chain.storage("ingest")
    blob = reader.bucket(chain.lake).get_blob("sales/2011-01.parquet")
    assert blob.media_link.startswith(chain.gateways[("gcs", "terraform")].url)  # downloads come back through
    assert blob.download_as_bytes() == b"parquet bytes"
    assert [b.name for b in reader.list_blobs(chain.lake, prefix="sales/")] == ["sales/2011-01.parquet"]
    ingest = chain.rmap.email("ingest")
    rows = [r for r in chain.audit_rows() if r["account"] == ingest and r["service"] == "gcs"]
    used = {(r["permission"], r["resource"]) for r in rows}
    obj = f"projects/_/buckets/{chain.lake}/objects/sales/2011-01.parquet"
    assert {
        ("storage.objects.create", obj),
        ("storage.objects.get", obj),
        ("storage.objects.list", f"projects/_/buckets/{chain.lake}"),
    } <= used
    assert rows and all(
        r["allowed"] and r["binding"].startswith("google_storage_bucket_iam_member.") for r in rows
    )  # granted on the bucket, not project-wide


def test_a_call_terraform_does_not_grant_is_403_naming_account_permission_and_resource(chain):
    with pytest.raises(gx.Forbidden) as denied:
        chain.storage("load").bucket(chain.landing).blob("stray.txt").upload_from_string(b"x")
    _assert_names(
        denied.value,
        chain.rmap.email("load"),
        "storage.objects.create",
        f"projects/_/buckets/{chain.landing}/objects/stray.txt",
    )
    with pytest.raises(gx.Forbidden) as denied:
        list(chain.storage("dbt").list_blobs(chain.lake))
    _assert_names(denied.value, chain.rmap.email("dbt"), "storage.objects.list", f"projects/_/buckets/{chain.lake}")
    assert chain.storage("admin").bucket(chain.landing).get_blob("stray.txt") is None


def test_transform_listing_the_lake_without_a_role_is_refused(chain):
    with pytest.raises(gx.Forbidden) as denied:
        list(chain.storage("transform", "snippet").list_blobs(chain.lake, prefix="_manifests/"))
    _assert_names(
        denied.value, chain.rmap.email("transform"), "storage.objects.list", f"projects/_/buckets/{chain.lake}"
    )


def test_conditional_grant_allows_only_the_rejected_prefix(chain):
    ingest = chain.storage("ingest", "snippet").bucket(chain.landing)
    ingest.blob("rejected/bad.xlsx.json").upload_from_string(b"{}")
    with pytest.raises(gx.Forbidden) as denied:
        ingest.blob("bad.xlsx.json").upload_from_string(b"{}")
    _assert_names(
        denied.value,
        chain.rmap.email("ingest"),
        "storage.objects.create",
        f"projects/_/buckets/{chain.landing}/objects/bad.xlsx.json",
    )
    names = [b.name for b in chain.storage("admin").list_blobs(chain.landing)]
    assert "rejected/bad.xlsx.json" in names and "bad.xlsx.json" not in names


def test_overwriting_an_object_also_needs_delete(chain):
    bucket = chain.storage("load", "snippet").bucket(chain.lake)
    bucket.blob("ledger/one.json").upload_from_string(b"first")
    with pytest.raises(gx.Forbidden) as denied:
        bucket.blob("ledger/one.json").upload_from_string(b"second")
    _assert_names(
        denied.value,
        chain.rmap.email("load"),
        "storage.objects.delete",
        f"projects/_/buckets/{chain.lake}/objects/ledger/one.json",
    )
    assert chain.storage("admin").bucket(chain.lake).blob("ledger/one.json").download_as_bytes() == b"first"


def test_if_generation_match_is_enforced(chain):
    bucket = chain.storage("ingest").bucket(chain.lake)
    first = bucket.blob("_claims/transform/b1/k")
    first.upload_from_string(b"first", if_generation_match=0)
    with pytest.raises(gx.PreconditionFailed, match="pre-conditions you specified did not hold"):
        bucket.blob("_claims/transform/b1/k").upload_from_string(b"second", if_generation_match=0)
    with pytest.raises(gx.PreconditionFailed):
        bucket.blob("_claims/transform/b1/k").upload_from_string(b"third", if_generation_match=first.generation + 1)
    replaced = bucket.blob("_claims/transform/b1/k")
    replaced.upload_from_string(b"fourth", if_generation_match=first.generation)
    assert replaced.generation != first.generation
    assert bucket.blob("_claims/transform/b1/k").download_as_bytes() == b"fourth"


def test_racing_creators_get_exactly_one_winner(chain):
    name, outcomes = "_claims/transform/race/k", []
    start = threading.Barrier(6)

    def claim(token: str) -> None:
        blob = chain.storage("ingest").bucket(chain.lake).blob(name)
        start.wait(timeout=30)
        try:
            blob.upload_from_string(token.encode(), if_generation_match=0)
            outcomes.append(("won", token))
        except gx.PreconditionFailed:
            outcomes.append(("lost", token))

    threads = [threading.Thread(target=claim, args=(f"token-{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    winners = [token for result, token in outcomes if result == "won"]
    assert len(outcomes) == 6 and len(winners) == 1, outcomes
    assert chain.storage("admin").bucket(chain.lake).blob(name).download_as_bytes() == winners[0].encode()


def test_resumable_uploads_stay_behind_the_gateway(chain):
    blob = chain.storage("ingest").bucket(chain.lake).blob("big/partition.parquet", chunk_size=256 * 1024)
    payload = bytes(range(256)) * 3000  # 768,000 bytes: three chunks
    blob.upload_from_file(io.BytesIO(payload), if_generation_match=0)  # no size given: a resumable upload
    assert chain.storage("admin").bucket(chain.lake).blob("big/partition.parquet").download_as_bytes() == payload
    puts = [
        r
        for r in chain.audit_rows()
        if r["method"] == "PUT"
        and r["path"].startswith("/upload/storage/")
        and r["resource"].endswith("/objects/big/partition.parquet")
    ]
    assert len(puts) >= 3 and all(r["allowed"] for r in puts)


def test_no_token_is_401(chain):
    url = chain.gateways[("gcs", "terraform")].url
    answer = requests.get(f"{url}/storage/v1/b/{chain.lake}/o", timeout=10)
    assert answer.status_code == 401 and answer.json()["error"]["status"] == "UNAUTHENTICATED"
    answer = requests.get(f"{url}/storage/v1/b/{chain.lake}/o", headers={"Authorization": "Bearer ya29.x"}, timeout=10)
    assert answer.status_code == 401


# --- BigQuery ---------------------------------------------------------------------------------


def test_granted_queries_and_loads_pass(chain):
    chain.storage("ingest").bucket(chain.lake).blob("csv/n.csv").upload_from_string(b"n\n5\n6\n")
    load = chain.bigquery("load")
    config = bigquery.LoadJobConfig(
        source_format="CSV", skip_leading_rows=1, schema=[bigquery.SchemaField("n", "INT64")]
    )
    load.load_table_from_uri(
        f"gs://{chain.lake}/csv/n.csv", chain.table("pipeline", "_stage_n"), job_config=config
    ).result(timeout=60)
    load.query(
        f"INSERT INTO `{chain.table('raw', 'lines')}` (n) SELECT n FROM `{chain.table('pipeline', '_stage_n')}`",
    ).result(timeout=60)
    assert sorted(r.n for r in load.list_rows(chain.table("raw", "lines"))) == [5, 6]
    load.delete_table(chain.table("pipeline", "_stage_n"))
    used = {
        (r["permission"], r["resource"])
        for r in chain.audit_rows()
        if r["account"] == chain.rmap.email("load") and r["allowed"]
    }
    p = f"projects/{chain.project}"
    assert {
        ("bigquery.jobs.create", p),
        ("storage.objects.get", f"projects/_/buckets/{chain.lake}/objects/csv/n.csv"),
        ("bigquery.tables.create", f"{p}/datasets/{chain.tag}_pipeline"),
        ("bigquery.tables.updateData", f"{p}/datasets/{chain.tag}_raw/tables/lines"),
        ("bigquery.tables.getData", f"{p}/datasets/{chain.tag}_pipeline/tables/_stage_n"),
    } <= used


def test_create_dataset_exists_ok_needs_project_level_create(chain):
    with pytest.raises(gx.Forbidden) as denied:
        chain.bigquery("load").create_dataset(f"{chain.project}.{chain.tag}_raw", exists_ok=True)
    _assert_names(denied.value, chain.rmap.email("load"), "bigquery.datasets.create", f"projects/{chain.project}")


def test_dbt_may_not_write_raw_tables(chain):
    with pytest.raises(gx.Forbidden) as denied:
        chain.bigquery("dbt").query(f"DELETE FROM `{chain.table('raw', 'lines')}` WHERE true").result(timeout=60)
    _assert_names(
        denied.value,
        chain.rmap.email("dbt"),
        "bigquery.tables.updateData",
        f"projects/{chain.project}/datasets/{chain.tag}_raw/tables/lines",
    )


def test_load_jobs_read_their_sources_as_the_caller(chain):
    chain.storage("ingest").bucket(chain.lake).blob("csv/t.csv").upload_from_string(b"n\n1\n")
    config = bigquery.LoadJobConfig(
        source_format="CSV", skip_leading_rows=1, schema=[bigquery.SchemaField("n", "INT64")]
    )
    with pytest.raises(gx.Forbidden) as denied:
        chain.bigquery("transform", "snippet").load_table_from_uri(
            f"gs://{chain.lake}/csv/t.csv", chain.table("pipeline", "_stage_t"), job_config=config
        )
    _assert_names(
        denied.value,
        chain.rmap.email("transform"),
        "storage.objects.get",
        f"projects/_/buckets/{chain.lake}/objects/csv/t.csv",
    )


def test_a_repeated_job_id_is_409_and_only_its_creator_reads_it(chain):
    load = chain.bigquery("load")
    job_id = f"retail_load_{uuid.uuid4().hex}"
    sql = f"SELECT 2 AS n, (SELECT count(*) FROM `{chain.table('raw', 'lines')}`) AS c"
    load.query(sql, job_id=job_id, job_retry=None).result(timeout=60)
    with pytest.raises(gx.Conflict, match=f"Already Exists: Job {chain.project}:EU.{job_id}"):
        load.query(sql, job_id=job_id, job_retry=None)
    job = load.get_job(job_id)
    assert job.state == "DONE"
    with pytest.raises(gx.NotFound):  # the strict layer lets the creator read its results table, which the
        list(load.list_rows(job.destination))  # emulator does not keep (it answers getQueryResults only)
    results = f"projects/{chain.project}/datasets/{job.destination.dataset_id}/tables/{job.destination.table_id}"
    seen = {(r["account"], r["allowed"], r["granted_by"]) for r in chain.audit_rows() if r["resource"] == results}
    assert seen == {(chain.rmap.email("load"), True, "creator of the query job that wrote it")}
    with pytest.raises(gx.Forbidden) as denied:
        list(chain.bigquery("dbt").list_rows(job.destination))
    _assert_names(denied.value, chain.rmap.email("dbt"), "bigquery.tables.get", results)
    with pytest.raises(gx.Forbidden) as denied:
        chain.bigquery("transform", "snippet").get_job(job_id)
    _assert_names(denied.value, chain.rmap.email("transform"), "bigquery.jobs.get", f"projects/{chain.project}")
