"""Smoke test of a deployed pipeline (the last Cloud Build step).

Generates a small Online Retail workbook, uploads it to the landing bucket with the Cloud Storage
client, and waits (with a timeout) until the fact table in BigQuery holds exactly the rows the
pipeline must produce for it: the count the same ingest code gives on this machine. Exits 0 on
success, 1 when the rows do not arrive in time, the file is rejected, or the count is wrong.

    python scripts/smoke_test.py --project PROJECT --outputs tf-outputs.json [--timeout 900]

`tf-outputs.json` is `terraform output -json` (landing_bucket, datasets, bigquery_location).
Credentials: Application Default Credentials (the Cloud Build service account); none are stored.
Note: the smoke workbook's rows stay in the warehouse as a batch of their own, under the
landing object `smoke/...` (see docs/deploy.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

FACT_TABLE = "fct_sales_lines"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass(frozen=True)
class SmokeResult:
    ok: bool  #: the fact table holds exactly the expected rows
    source_uri: str
    expected_rows: int
    found_rows: int
    seconds: float
    message: str


def make_workbook(folder: Path, rows: int, seed: int) -> Path:
    """Write a deterministic sample workbook (the project's own generator)."""
    from retail_pipeline.sample import write_sample

    path = folder / f"smoke-{seed}.xlsx"
    write_sample(path, rows=rows, seed=seed)
    return path


def expected_fact_rows(workbook: Path) -> int:
    """Rows the pipeline loads for WORKBOOK: run the same ingest code into a scratch lake."""
    from retail_pipeline.adapters.local_store import FolderStore
    from retail_pipeline.config import Limits
    from retail_pipeline.ingest import ingest_object

    with tempfile.TemporaryDirectory(prefix="smoke-lake-") as lake:
        result = ingest_object(workbook, workbook.name, workbook.resolve().as_uri(), 1, FolderStore(lake), Limits())
    if result.state != "ingested":
        raise RuntimeError(f"the smoke workbook itself is rejected locally: {result.error}")
    return result.rows_loaded


def upload(storage_client, bucket_name: str, object_name: str, path: Path, timeout: float = 120.0) -> tuple[str, int]:
    """Upload PATH to gs://BUCKET/OBJECT; returns its URI and generation."""
    blob = storage_client.bucket(bucket_name).blob(object_name)
    blob.upload_from_filename(str(path), content_type=XLSX_TYPE, timeout=timeout)
    if blob.generation is None:
        blob.reload(timeout=timeout)
    return f"gs://{bucket_name}/{object_name}", int(blob.generation)


def count_rows(bq_client, table: str, column: str, value: str, timeout: float = 60.0) -> int | None:
    """Rows of TABLE whose COLUMN equals VALUE, or None while the table does not exist yet."""
    from google.api_core.exceptions import NotFound
    from google.cloud import bigquery

    query = f"SELECT COUNT(*) AS n FROM `{table}` WHERE {column} = @value"
    config = bigquery.QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter("value", "STRING", value)])
    try:
        rows = list(bq_client.query(query, job_config=config, timeout=timeout).result(timeout=timeout))
    except NotFound:
        return None
    return int(rows[0]["n"])


def rejected_batch(bq_client, batches_table: str, source_uri: str, timeout: float = 60.0) -> str | None:
    """The error of a rejected manifest for SOURCE_URI, if ingest rejected the file."""
    from google.api_core.exceptions import NotFound
    from google.cloud import bigquery

    query = f"SELECT error FROM `{batches_table}` WHERE source_uri = @uri AND state = 'rejected' LIMIT 1"
    config = bigquery.QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter("uri", "STRING", source_uri)])
    try:
        rows = list(bq_client.query(query, job_config=config, timeout=timeout).result(timeout=timeout))
    except NotFound:
        return None
    return (rows[0]["error"] or "rejected") if rows else None


def wait_for_rows(
    bq_client,
    fact_table: str,
    batches_table: str,
    source_uri: str,
    expected: int,
    timeout: float,
    poll_seconds: float = 15.0,
    say: Callable[[str], None] = print,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> SmokeResult:
    """Poll the fact table until it holds EXPECTED rows of SOURCE_URI, or TIMEOUT seconds pass."""
    started = clock()
    found = 0
    while True:
        count = count_rows(bq_client, fact_table, "source_uri", source_uri)
        found = count or 0
        elapsed = clock() - started
        if count == expected:
            return SmokeResult(True, source_uri, expected, found, elapsed, f"{found} rows arrived in {elapsed:.0f} s")
        if count is not None and count > expected:
            return SmokeResult(
                False,
                source_uri,
                expected,
                found,
                elapsed,
                f"{found} rows in {fact_table}, more than the {expected} expected",
            )
        error = rejected_batch(bq_client, batches_table, source_uri)
        if error:
            return SmokeResult(False, source_uri, expected, found, elapsed, f"the pipeline rejected the file: {error}")
        if elapsed >= timeout:
            state = "table not found" if count is None else f"{found} of {expected} rows"
            return SmokeResult(
                False, source_uri, expected, found, elapsed, f"timed out after {timeout:.0f} s: {state} in {fact_table}"
            )
        say(f"  {elapsed:5.0f} s: {found} of {expected} rows")
        sleep(min(poll_seconds, max(0.0, timeout - elapsed)))


def run_smoke(
    storage_client,
    bq_client,
    *,
    project: str,
    landing_bucket: str,
    analytics_dataset: str,
    raw_dataset: str,
    rows: int,
    seed: int,
    object_prefix: str,
    timeout: float,
    poll_seconds: float,
    say: Callable[[str], None] = print,
) -> SmokeResult:
    """Generate, upload and wait: the whole smoke test, with injectable clients."""
    with tempfile.TemporaryDirectory(prefix="smoke-") as tmp:
        workbook = make_workbook(Path(tmp), rows, seed)
        expected = expected_fact_rows(workbook)
        object_name = f"{object_prefix}{workbook.name}"
        source_uri, generation = upload(storage_client, landing_bucket, object_name, workbook)
    say(
        f"uploaded {source_uri} (generation {generation}); waiting for {expected} rows in "
        f"{project}.{analytics_dataset}.{FACT_TABLE} (timeout {timeout:.0f} s)"
    )
    return wait_for_rows(
        bq_client,
        f"{project}.{analytics_dataset}.{FACT_TABLE}",
        f"{project}.{raw_dataset}.batches",
        source_uri,
        expected,
        timeout,
        poll_seconds,
        say,
    )


def _output(outputs: dict, name: str):
    try:
        return outputs[name]["value"]
    except KeyError:
        raise SystemExit(f"error: terraform output {name!r} is missing from the outputs file") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Upload a small workbook and wait for its rows in the fact table.")
    parser.add_argument("--project", required=True, help="Google Cloud project id")
    parser.add_argument("--outputs", type=Path, required=True, help="`terraform output -json` of the deployment")
    parser.add_argument("--rows", type=int, default=300, help="data rows of the generated workbook")
    parser.add_argument("--seed", type=int, default=None, help="generator seed (default: from the clock)")
    parser.add_argument("--prefix", default="smoke/", help="object name prefix in the landing bucket")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for the rows")
    parser.add_argument("--poll", type=float, default=15, help="seconds between checks")
    args = parser.parse_args(argv)

    from google.cloud import bigquery, storage

    outputs = json.loads(args.outputs.read_text())
    datasets = _output(outputs, "datasets")
    seed = args.seed if args.seed is not None else int(time.time())
    result = run_smoke(
        storage.Client(project=args.project),
        bigquery.Client(project=args.project, location=_output(outputs, "bigquery_location")),
        project=args.project,
        landing_bucket=_output(outputs, "landing_bucket"),
        analytics_dataset=datasets["analytics"],
        raw_dataset=datasets["raw"],
        rows=args.rows,
        seed=seed,
        object_prefix=args.prefix,
        timeout=args.timeout,
        poll_seconds=args.poll,
    )
    print(("PASS: " if result.ok else "FAIL: ") + result.message)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
