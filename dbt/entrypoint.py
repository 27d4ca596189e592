"""Entrypoint of the dbt Cloud Run job: ``dbt build`` for one batch, then one JSON summary line.

    python entrypoint.py --vars '{"batch_id": "...", "partitions": ["2011-01"]}' [--target prod]

The transform function starts one job execution per completed batch and passes ``--vars`` in the
container overrides (see retail_pipeline/cloudrun.py). ``--vars`` may also come from the env var
``DBT_VARS``; the target from ``--target`` or ``DBT_TARGET`` (default ``prod``, BigQuery with the
job's service account). Locally the same script runs against DuckDB with ``--target local``.

The job records its own outcome (state, models built, tests passed/failed, error, execution) in
the pipeline dataset's ``transform_runs`` rows of the batches it was started for
(``RETAIL_PIPELINE_BATCH_IDS``, comma-separated, and ``RETAIL_PIPELINE_CLAIM_KEY``, both in the
execution's env overrides), so ``retail-pipeline status`` shows the true result on every chain.

The batch does not reach dbt as ``--vars`` (a value that changes per batch would make dbt parse
the whole project again): the script queues the batch's months in the transform slice table
(``dbt run-operation queue_transform_slice``), then runs the production build (models and data
tests; unit tests run in CI). Both commands reuse one parse, which starts from the
``partial_parse.msgpack`` the image build wrote (``dbt parse`` in the Dockerfile).

After a successful build, when ``RETAIL_PIPELINE_REPORTS`` is set (``gs://BUCKET/reports/``; Terraform
sets it), the job writes the month's Excel report: the pipeline's report step,
``python -m retail_pipeline.report_job``, runs as a child process (the image holds the package; see
dbt/Dockerfile) for the latest month the batch touched. The build's success is recorded before the
report starts, so a report that fails cannot undo or mark failed the data: the failure is logged as
``"stage": "report", "status": "failed"``, noted on the run's record (``error`` = "report not
written: ...", state still ``success``; ``retail-pipeline status`` shows it) and ends the execution
with its own exit code.

Exit codes: 0 every model built and every test passed (and the report, if asked for, was written);
1 dbt ran and something failed (Cloud Run marks the execution failed); 2 dbt could not run at all
(bad vars, no connection, bad project); 3 the outcome could not be recorded; 4 the data was built
and recorded but the report was not written (Cloud Run marks the execution failed and, with
``max_retries``, runs it again: the build is idempotent and the report gets another try).
Every build failure logs ``"stage": "transform", "status": "failed"`` (the log-based metric of
terraform/monitoring.tf counts those lines); a report failure logs ``"stage": "report"`` instead.
The script imports no pipeline code itself (dbt parses and builds without it); the report step is
the package's, in its own process.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent
MONTH_RE = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")
REPORT_FAILED = 4  #: exit code: the data was built and recorded, the month's report was not written
REPORT_TIMEOUT_SECONDS = 900  #: the report step's limit (the job's task timeout is 1800 s by default)
REPORT_NOTE = "report not written: "  #: the run record's error when only the report failed


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


def violated_rules(runner, common: list[str], results) -> dict[str, str]:
    """``{test unique_id: "rule (N rows), ..."}`` for each failed ``row_rules`` test
    (tests/generic/row_rules.sql: one row per violated check): its query run again through ``dbt
    show``, only on failure (the pipeline's own dbt runs do the same: retail_pipeline/dbt_rules.py)."""
    from dbt.contracts.graph.nodes import GenericTestNode

    # dbt show writes run_results.json too: not over the build's
    target = Path(os.environ.get("DBT_TARGET_PATH") or PROJECT_DIR / "target") / "violated_rules"
    found = {}
    for r in results:
        node, status = r.node, str(r.status).split(".")[-1].lower()
        if not (isinstance(node, GenericTestNode) and node.test_metadata.name == "row_rules" and status == "fail"):
            continue
        try:  # best effort: the error names the test whatever happens here
            shown = runner.invoke(
                ["show", *common, "--target-path", str(target), "--inline", node.compiled_code]
                + ["--limit", "100", "--log-level", "none"]
            )
            rows = [(str(rule), int(n)) for result in shown.result.results for rule, n in result.agate_table.rows]
        except Exception:
            continue
        if shown.exception is None and shown.success:
            found[node.unique_id] = ", ".join(f"{rule} ({count} row{'s' * (count != 1)})" for rule, count in rows)
    return found


def summarize(results, violated: dict[str, str] | None = None) -> dict:
    """Counts of built models and passed/failed tests from dbt's run results; ``violated`` names the
    violated checks of failed row_rules tests."""
    summary = {"models_built": 0, "tests_passed": 0, "tests_failed": 0, "errors": []}
    for r in results:
        resource = str(r.node.resource_type).split(".")[-1].lower()
        status = str(r.status).split(".")[-1].lower()
        if resource in ("test", "unit_test"):
            if status == "pass":
                summary["tests_passed"] += 1
            elif status in ("fail", "error", "warn"):
                summary["tests_failed"] += 1
                rules = (violated or {}).get(r.node.unique_id)
                summary["errors"].append(
                    f"{r.node.unique_id}: {r.message}" + (f" (violated: {rules})" if rules else "")
                )
        elif resource in ("model", "seed", "snapshot"):
            if status == "success":
                summary["models_built"] += 1
            elif status == "error":
                summary["errors"].append(f"{r.node.unique_id}: {r.message}")
    return summary


def record_outcome(target: str, outcome: dict) -> int:
    """Write the run's outcome into transform_runs for the batches this execution was started for.
    Returns how many run rows it updated (0 when the execution names no batches: a manual run)."""
    batch_ids = [b for b in os.environ.get("RETAIL_PIPELINE_BATCH_IDS", "").split(",") if b]
    claim_key = os.environ.get("RETAIL_PIPELINE_CLAIM_KEY", "initial")
    if not batch_ids:
        return 0
    values = [
        outcome["state"],
        outcome.get("tests_passed", 0),
        outcome.get("tests_failed", 0),
        outcome.get("models_built", 0),
        float(outcome.get("seconds", 0.0)),
        outcome.get("error"),
        os.environ.get("CLOUD_RUN_EXECUTION"),
    ]
    columns = ["state", "tests_passed", "tests_failed", "models_built", "seconds", "error", "execution"]
    if target == "local":
        import duckdb

        con = duckdb.connect(os.environ["RETAIL_PIPELINE_DUCKDB_PATH"])
        try:
            sets = ", ".join(f"{c} = coalesce({c}, ?)" if c == "execution" else f"{c} = ?" for c in columns)
            marks = ", ".join("?" for _ in batch_ids)
            updated = con.execute(
                f"UPDATE pipeline.transform_runs SET {sets}, finished_at = now() "
                f"WHERE claim_key = ? AND batch_id IN ({marks})",
                [*values, claim_key, *batch_ids],
            ).fetchone()
        finally:
            con.close()
        return int(updated[0]) if updated else 0
    from google.cloud import bigquery

    project = os.environ["RETAIL_PIPELINE_GCP_PROJECT"]
    table = f"`{project}.{os.environ.get('RETAIL_PIPELINE_PIPELINE_DATASET', 'retail_pipeline')}.transform_runs`"
    kwargs: dict = {"project": project, "location": os.environ.get("RETAIL_PIPELINE_BQ_LOCATION", "EU")}
    if os.environ.get("BIGQUERY_EMULATOR_HOST"):  # the emulator chain: as this job's identity, through its gateway
        from google.oauth2.credentials import Credentials

        kwargs["credentials"] = Credentials(token=os.environ.get("RETAIL_PIPELINE_ACCESS_TOKEN", "emulator"))
        kwargs["client_options"] = {"api_endpoint": os.environ["BIGQUERY_EMULATOR_HOST"]}
    client = bigquery.Client(**kwargs)
    types = ["STRING", "INT64", "INT64", "INT64", "FLOAT64", "STRING", "STRING"]
    params = [bigquery.ScalarQueryParameter(c, t, v) for c, t, v in zip(columns, types, values)]
    params += [
        bigquery.ScalarQueryParameter("claim_key", "STRING", claim_key),
        bigquery.ArrayQueryParameter("batch_ids", "STRING", batch_ids),
    ]
    # the transform recorded the execution's full name when it started it; Cloud Run tells the job its short name
    sets = ", ".join(f"{c} = COALESCE({c}, @{c})" if c == "execution" else f"{c} = @{c}" for c in columns)
    job = client.query(
        f"UPDATE {table} SET {sets}, finished_at = CURRENT_TIMESTAMP() "
        "WHERE claim_key = @claim_key AND batch_id IN UNNEST(@batch_ids)",
        job_config=bigquery.QueryJobConfig(query_parameters=params),
    )
    job.result(timeout=300)
    return int(job.num_dml_affected_rows or 0)


def finish(record: dict, outcome: dict, code: int, target: str) -> int:
    """Record the outcome in the warehouse, print the one JSON line, return the exit code."""
    try:
        record["runs_recorded"] = record_outcome(target, outcome)
    except Exception as exc:
        outcome = {
            **outcome,
            "state": "failed",
            "error": f"{outcome.get('error') or ''} (and the outcome could not be recorded: {exc})".strip(),
        }
        code = code or 3
    ok = outcome["state"] == "success"
    print(
        json.dumps(
            {
                **record,
                **{k: v for k, v in outcome.items() if k != "state"},
                "severity": "INFO" if ok else "ERROR",
                "stage": "transform",
                "status": "success" if ok else "failed",
                "message": f"dbt build {'passed' if ok else 'failed'} for batch {record.get('batch_id')}",
            }
        ),
        flush=True,
    )
    return code


def write_report(record: dict, outcome: dict, target: str) -> int:
    """After a successful build that is already recorded: the month's report, by the pipeline's report
    step in a child process, when ``RETAIL_PIPELINE_REPORTS`` is set. Returns 0, or REPORT_FAILED when
    the report was not written (logged as stage=report, and noted on the run, whose state stays success)."""
    if not os.environ.get("RETAIL_PIPELINE_REPORTS"):
        return 0
    command = [sys.executable, "-m", "retail_pipeline.report_job", "--months", ",".join(record.get("partitions", []))]
    if record.get("batch_id"):
        command += ["--batch-id", record["batch_id"]]
    try:
        step = subprocess.run(command, capture_output=True, text=True, timeout=REPORT_TIMEOUT_SECONDS, check=False)
        lines, code, tail = step.stdout.splitlines(), step.returncode, step.stderr.strip()[-2000:]
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        lines, code, tail = out.splitlines(), None, f"the report step was stopped after {REPORT_TIMEOUT_SECONDS} s"
    reported = None
    for line in lines:  # the step's own JSON line, relayed to this job's log
        print(line, flush=True)
        if line.startswith("{") and '"stage": "report"' in line:
            reported = json.loads(line)
    if code == 0 and reported is not None and reported.get("status") == "success":
        return 0
    if reported is not None and reported.get("status") == "failed":
        message = reported["message"]
    else:  # the step died before it could say why (not installed, killed, timed out)
        message = tail if code is None else f"the report step ended with exit code {code}: {tail or 'no output'}"
        print(
            json.dumps(
                {
                    "severity": "ERROR",
                    "stage": "report",
                    "status": "failed",
                    "batch_id": record.get("batch_id"),
                    "message": message,
                }
            ),
            flush=True,
        )
    try:  # the note on the run (its state stays success: the data is built)
        record_outcome(target, {**outcome, "error": (REPORT_NOTE + message)[:4000]})
    except Exception as exc:
        print(
            json.dumps({"severity": "WARNING", "stage": "report", "message": f"not noted on the run: {exc}"}),
            flush=True,
        )
    return REPORT_FAILED


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
        return finish(record, {"state": "failed", "error": f"bad request: {exc}"}, 2, args.target)
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
    seconds = round(time.monotonic() - started, 3)
    if outcome.exception is not None:
        return finish(
            record,
            {"state": "failed", "seconds": seconds, "error": f"dbt could not run: {outcome.exception}"[:4000]},
            2,
            args.target,
        )
    results = outcome.result.results if outcome.result is not None else []
    violated = {} if outcome.success or outcome is parsed else violated_rules(runner, common, results)
    summary = summarize(results, violated)
    ok = outcome.success and not summary["errors"]
    errors = summary.pop("errors")
    built = {**summary, "state": "success" if ok else "failed", "seconds": seconds}
    built["error"] = "; ".join(errors)[:4000] or None
    code = finish(record, built, 0 if ok else 1, args.target)
    return write_report(record, built, args.target) if code == 0 else code


if __name__ == "__main__":
    sys.exit(main())
