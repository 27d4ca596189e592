"""The month's report after every successful dbt build (RETAIL_PIPELINE_REPORTS): the setting, which
month, the embedded run writing it into a folder, the dbt job's entrypoint running the report step, and
what a report that cannot be written leaves: a logged failure, a note on the run, the build a success.

The GCP path (the dbt job writing into the reports bucket as its own service account, and refused
without its grant) is checked on the strict emulator chain in tests/test_cloud_truth.py.
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import os
import shutil
from pathlib import Path

import openpyxl
import pytest

from helpers import run_cli
from report_checks import assert_summary_equals_marts

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- the setting and the month


@pytest.mark.parametrize(
    ("url", "store", "prefix"),
    [
        ("gs://acme-reports/reports/", "gs://acme-reports", "reports/"),
        ("gs://acme-reports/reports", "gs://acme-reports", "reports/"),
        ("gs://acme-reports/monthly/excel/", "gs://acme-reports", "monthly/excel/"),
        ("gs://acme-reports", "gs://acme-reports", ""),
    ],
)
def test_a_reports_url_names_a_bucket_and_a_prefix(url, store, prefix):
    from retail_pipeline.urls import parse_reports

    parsed = parse_reports(url)
    assert (parsed.store, parsed.prefix) == (store, prefix)
    assert parsed.bucket.bucket == "acme-reports"


def test_a_reports_folder_is_the_folder_itself(tmp_path):
    from retail_pipeline.urls import parse_reports

    parsed = parse_reports(str(tmp_path / "reports"))
    assert (parsed.store, parsed.prefix, parsed.bucket.path) == (str(tmp_path / "reports"), "", tmp_path / "reports")


@pytest.mark.parametrize("url", ["gs://", "gs:///reports/", "gs://b/../x/", "gs://b/a//c/"])
def test_a_bad_reports_url_is_a_clear_error(url):
    from retail_pipeline.config import Settings
    from retail_pipeline.urls import SettingError

    with pytest.raises(SettingError, match="gs://BUCKET/PREFIX/"):
        Settings.from_env("h", environ={"RETAIL_PIPELINE_REPORTS": url})


def test_the_setting_reaches_child_processes_and_is_off_by_default(tmp_path):
    from retail_pipeline.config import Settings, child_env

    off = Settings.from_env(tmp_path, environ={})
    assert off.reports == "" and off.reports_url is None and "RETAIL_PIPELINE_REPORTS" not in off.to_env()
    on = Settings.from_env(tmp_path, environ={"RETAIL_PIPELINE_REPORTS": "gs://acme-reports/reports/"})
    assert child_env(on, base={"RETAIL_PIPELINE_REPORTS": "gs://other/x/"})["RETAIL_PIPELINE_REPORTS"] == (
        "gs://acme-reports/reports/"
    )
    assert Settings.from_env(tmp_path, environ=on.to_env()) == on


@pytest.mark.parametrize(
    ("touched", "months", "expected"),
    [
        (["2011-01", "2011-03", "2011-02"], ["2010-12", "2011-01", "2011-02", "2011-03", "2011-04"], "2011-03"),
        (["2011-09"], ["2011-01", "2011-09", "2011-12"], "2011-09"),  # a correction of September
        (["2011-05"], ["2011-01", "2011-02"], "2011-02"),  # the touched month has no data left
        ([], ["2011-01", "2011-02"], "2011-02"),  # a build that touched no month
    ],
)
def test_the_report_is_of_the_latest_month_the_build_touched(touched, months, expected):
    from retail_pipeline.report.publish import report_month

    assert report_month(touched, months) == expected


def test_no_month_with_data_is_a_report_error():
    from retail_pipeline.report import ReportError
    from retail_pipeline.report.publish import report_month

    with pytest.raises(ReportError, match="no data"):
        report_month(["2011-01"], [])


def test_the_report_step_refuses_bad_months_and_a_missing_setting(monkeypatch, capsys):
    from retail_pipeline import report_job

    monkeypatch.setenv("RETAIL_PIPELINE_REPORTS", "")
    assert report_job.main(["--months", "2011-01"]) == 2
    line = json.loads(capsys.readouterr().out)
    assert (line["stage"], line["status"]) == ("report", "failed") and "RETAIL_PIPELINE_REPORTS" in line["message"]
    monkeypatch.setenv("RETAIL_PIPELINE_REPORTS", "gs://acme-reports/reports/")
    assert report_job.main(["--months", "2011-1,Nov"]) == 2
    assert "2011-1, Nov" in json.loads(capsys.readouterr().out)["message"]


# ---------------------------------------------------------------- the embedded chain (a folder)


def _latest_month(db: Path, duckdb_sql) -> str:
    [(month,)] = duckdb_sql(db, "select strftime(max(invoice_month), '%Y-%m') from mart_revenue_monthly")
    return month


def test_the_embedded_run_wrote_the_months_report_into_the_folder(small_home: Path, duckdb_sql):
    """`retail-pipeline run` with RETAIL_PIPELINE_REPORTS=HOME/reports (analytics_fixtures.small_home):
    the report of the latest month the batch touched, equal to the marts read here."""
    db = small_home / "warehouse.duckdb"
    month = _latest_month(db, duckdb_sql)
    folder = small_home / "reports"
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [f"online-retail-{month}.xlsx"]
    book = openpyxl.load_workbook(folder / f"online-retail-{month}.xlsx")
    try:
        assert_summary_equals_marts(book, month, lambda sql: duckdb_sql(db, sql))
    finally:
        book.close()
    lines = [json.loads(x) for x in (small_home / "logs" / "pipeline.jsonl").read_text().splitlines()]
    [written] = [x for x in lines if x.get("stage") == "report"]
    assert (written["severity"], written["status"]) == ("INFO", "success")
    assert written["object"] == (folder / f"online-retail-{month}.xlsx").as_uri()
    status = json.loads(run_cli(small_home, "status", "--json").stdout)
    assert [(b["state"], b["error"]) for b in status["batches"]] == [("transformed", None)]


def _warehouse_copy(small_home: Path, home: Path) -> Path:
    """A copy of the run's warehouse in HOME (the shared run stays as it is)."""
    home.mkdir(parents=True)
    for path in small_home.glob("warehouse.duckdb*"):
        shutil.copy(path, home / path.name)
    return home / "warehouse.duckdb"


def test_a_report_that_cannot_be_written_is_logged_and_noted_and_the_build_stands(small_home: Path, tmp_path):
    """The transform's report step with a reports folder that cannot exist (its parent is a file)."""
    from retail_pipeline.config import Settings
    from retail_pipeline.context import Context
    from retail_pipeline.logs import JsonFormatter
    from retail_pipeline.ports import TransformResult
    from retail_pipeline.report.publish import report_after_build
    from retail_pipeline.status import collect

    db = _warehouse_copy(small_home, tmp_path / "home")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    settings = Settings.from_env(db.parent, environ={"RETAIL_PIPELINE_REPORTS": str(blocker / "reports")})
    ctx = Context(settings)
    before = collect(ctx)
    [batch] = before["batches"]
    assert batch["state"] == "transformed"
    built = TransformResult("success", before["dbt"]["tests_passed"], 0, before["dbt"]["models_built"], 9.5)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("retail_pipeline.report.publish")
    logger.addHandler(handler)
    try:
        partitions = ctx.warehouse.batch_progress(batch["batch_id"]).partitions
        assert report_after_build(ctx, [batch["batch_id"]], "initial", built, partitions) is None
    finally:
        logger.removeHandler(handler)
    [line] = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert (line["severity"], line["stage"], line["status"]) == ("ERROR", "report", "failed")
    assert line["batch_id"] == batch["batch_id"]
    month = max(partitions)
    assert f"the report of {month} was not written to {blocker / 'reports'}" in line["message"]
    assert "Not a directory" in line["message"]
    after = collect(ctx)
    [noted] = after["batches"]
    assert noted["state"] == "transformed" and after["dbt"]["status"] == "success"
    assert noted["error"] == "report not written: " + line["message"]
    assert after["warehouse"] == before["warehouse"]
    assert not (blocker.parent / "reports").exists()


# ---------------------------------------------------------------- the dbt job's entrypoint


def _entrypoint():
    spec = importlib.util.spec_from_file_location("dbt_job_entrypoint", REPO / "dbt" / "entrypoint.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("writable", [True, False], ids=["written", "refused"])
def test_the_jobs_entrypoint_runs_the_report_step_after_its_recorded_build(
    small_home: Path, tmp_path: Path, monkeypatch, capsys, duckdb_sql, writable: bool
):
    """What dbt/entrypoint.py does after a build it recorded as a success: the pipeline's report step in
    a child process (as in the image), its JSON line relayed; exit code 4 and a note when it failed."""
    entrypoint = _entrypoint()
    db = _warehouse_copy(small_home, tmp_path / "home")
    month = _latest_month(db, duckdb_sql)
    [(batch_id,)] = duckdb_sql(db, "select batch_id from pipeline.transform_runs")
    partitions = [m for (m,) in duckdb_sql(db, "select strftime(invoice_month, '%Y-%m') from mart_revenue_monthly")]
    if writable:
        target = tmp_path / "reports"
    else:
        (tmp_path / "a-file").write_text("not a folder")
        target = tmp_path / "a-file" / "reports"
    for key in [k for k in os.environ if k.startswith("RETAIL_PIPELINE_")]:
        monkeypatch.delenv(key)
    job_env = {
        "RETAIL_PIPELINE_HOME": str(db.parent),
        "RETAIL_PIPELINE_WAREHOUSE": f"duckdb:///{db}",
        "RETAIL_PIPELINE_REPORTS": str(target),
        "RETAIL_PIPELINE_DUCKDB_PATH": str(db),  # where the local target records the outcome
        "RETAIL_PIPELINE_BATCH_IDS": batch_id,
        "RETAIL_PIPELINE_CLAIM_KEY": "initial",
    }
    for key, value in job_env.items():
        monkeypatch.setenv(key, value)
    built = {"state": "success", "tests_passed": 7, "tests_failed": 0, "models_built": 3, "seconds": 1.5}
    record = {"batch_id": batch_id, "partitions": sorted(partitions)}
    code = entrypoint.write_report(record, {**built, "error": None}, "local")
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    [line] = [x for x in lines if x.get("stage") == "report"]  # relayed once, not repeated
    assert line["batch_id"] == batch_id
    [(state, error, tests_passed)] = duckdb_sql(
        db, "select state, error, tests_passed from pipeline.transform_runs where batch_id = ?", batch_id
    )
    if writable:
        assert code == 0 and (line["status"], line["month"]) == ("success", month)
        assert line["object"] == (target / f"online-retail-{month}.xlsx").as_uri()
        assert openpyxl.load_workbook(target / f"online-retail-{month}.xlsx", read_only=True).sheetnames[0] == "Summary"
        assert error is None  # the run's record is the build's
    else:
        assert code == entrypoint.REPORT_FAILED == 4
        assert (line["severity"], line["status"]) == ("ERROR", "failed") and "Not a directory" in line["message"]
        # the build stays a success; its record notes the report (the build's figures kept)
        assert (state, tests_passed) == ("success", 7) and error == "report not written: " + line["message"]
