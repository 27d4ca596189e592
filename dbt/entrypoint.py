"""Entrypoint of the dbt Cloud Run job: ``dbt build`` for one batch, then one JSON summary line.

    python entrypoint.py --vars '{"batch_id": "...", "partitions": ["2011-01"]}' [--target prod]

The transform function starts one job execution per completed batch and passes ``--vars`` in the
container overrides (see retail_pipeline/cloudrun.py). ``--vars`` may also come from the env var
``DBT_VARS``; the target from ``--target`` or ``DBT_TARGET`` (default ``prod``, BigQuery with the
job's service account). Locally the same script runs against DuckDB with ``--target local``.

The batch does not reach dbt as ``--vars`` (a value that changes per batch would make dbt parse
the whole project again): the script queues the batch's months in the transform slice table
(``dbt run-operation queue_transform_slice``), then runs the production build (models and data
tests; unit tests run in CI). Both commands reuse one parse, which starts from the
``partial_parse.msgpack`` the image build wrote (``dbt parse`` in the Dockerfile).

Exit codes: 0 every model built and every test passed; 1 dbt ran and something failed (Cloud Run
marks the execution failed); 2 dbt could not run at all (bad vars, no connection, bad project).
The script is standalone (the image holds only dbt and this project), so it imports no pipeline code.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent
MONTH_RE = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")


def parse_vars(text: str) -> dict:
    """The batch vars as dbt gets them; rejects anything that is not a batch id plus YYYY-MM months."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--vars is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ValueError("--vars must be a JSON object")
    batch_id = value.get("batch_id")
    partitions = value.get("partitions", [])
    if batch_id is not None and not isinstance(batch_id, str):
        raise ValueError("batch_id must be a string")
    if not isinstance(partitions, list) or not all(isinstance(p, str) and MONTH_RE.match(p) for p in partitions):
        raise ValueError(f"partitions must be a list of YYYY-MM months, got {partitions!r}")
    if partitions and batch_id is None:
        raise ValueError("partitions need the batch_id that touched them")
    return value


def summarize(results) -> dict:
    """Counts of built models and passed/failed tests from dbt's run results."""
    summary = {"models_built": 0, "tests_passed": 0, "tests_failed": 0, "errors": []}
    for r in results:
        resource = str(r.node.resource_type).split(".")[-1].lower()
        status = str(r.status).split(".")[-1].lower()
        if resource in ("test", "unit_test"):
            if status == "pass":
                summary["tests_passed"] += 1
            elif status in ("fail", "error", "warn"):
                summary["tests_failed"] += 1
                summary["errors"].append(f"{r.node.unique_id}: {r.message}")
        elif resource in ("model", "seed", "snapshot"):
            if status == "success":
                summary["models_built"] += 1
            elif status == "error":
                summary["errors"].append(f"{r.node.unique_id}: {r.message}")
    return summary


def main(argv: list[str] | None = None) -> int:
    """Run dbt build with the batch's vars; print one JSON line (Cloud Logging parses it); return the exit code."""
    parser = argparse.ArgumentParser(description="dbt build for one batch (the Cloud Run job)")
    parser.add_argument("--vars", default=os.environ.get("DBT_VARS", "{}"), help="batch vars as JSON")
    parser.add_argument("--target", default=os.environ.get("DBT_TARGET", "prod"), help="dbt target (prod, local, ...)")
    parser.add_argument("--full-refresh", action="store_true", help="rebuild incremental models whole")
    args = parser.parse_args(argv)

    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    started = time.monotonic()
    record: dict = {"severity": "INFO", "target": args.target}
    try:
        batch_vars = parse_vars(args.vars)
    except ValueError as exc:
        print(json.dumps({**record, "severity": "ERROR", "status": "bad_request", "message": str(exc)}), flush=True)
        return 2
    record.update(batch_id=batch_vars.get("batch_id"), partitions=batch_vars.get("partitions", []))

    from dbt.cli.main import dbtRunner

    common = ["--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR), "--target", args.target]
    parsed = dbtRunner().invoke(["parse", *common])
    outcome = parsed
    if parsed.exception is None and parsed.success:
        runner = dbtRunner(manifest=parsed.result)  # one parse for both commands
        if batch_vars.get("batch_id") is not None:  # without a batch: a manual build (stale months only)
            queue = {"batch_id": batch_vars["batch_id"], "months": batch_vars.get("partitions", [])}
            outcome = runner.invoke(["run-operation", "queue_transform_slice", "--args", json.dumps(queue), *common])
        if outcome.exception is None and outcome.success:
            build = ["build", *common, "--exclude", "resource_type:unit_test"]
            if args.full_refresh:
                build.append("--full-refresh")
            outcome = runner.invoke(build)
        elif outcome.exception is None:
            outcome.exception = RuntimeError("queue_transform_slice failed (see the dbt log)")
    record["seconds"] = round(time.monotonic() - started, 3)
    if outcome.exception is not None:
        print(json.dumps({**record, "severity": "ERROR", "status": "error",
                          "message": f"dbt could not run: {outcome.exception}"}), flush=True)
        return 2
    summary = summarize(outcome.result.results if outcome.result is not None else [])
    ok = outcome.success and not summary["errors"]
    summary["errors"] = summary["errors"][:20]
    print(json.dumps({**record, **summary, "severity": "INFO" if ok else "ERROR",
                      "status": "success" if ok else "failed",
                      "message": f"dbt build {'passed' if ok else 'failed'} for batch {record['batch_id']}"}),
          flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
