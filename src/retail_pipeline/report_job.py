"""The dbt job's report step: the month's Excel report after a successful build, as its own process.

    python -m retail_pipeline.report_job [--months 2011-11,2011-12] [--batch-id ID]

``dbt/entrypoint.py`` runs it after a successful ``dbt build`` when ``RETAIL_PIPELINE_REPORTS`` is set
(in GCP the job's image holds the package; on the emulator chain the Run Admin stand-in runs the job
with the same environment). Settings come from the environment (the job's: warehouse, reports
location, and on the emulator chain its endpoints and identity). ``--months`` are the invoice months
the build touched; the report is of the latest with data (see :mod:`.report.publish`).

Prints one JSON line (Cloud Logging parses it): ``"stage": "report"``, ``"status": "success"`` with
the month and the object, or ``"failed"`` with the reason. Exit codes: 0 written; 1 not written
(logged); 2 bad arguments or settings.
"""

from __future__ import annotations

import argparse
import json
import re
import sys

from .config import Settings
from .urls import SettingError

MONTH = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")


def _line(severity: str, status: str, message: str, **fields: object) -> str:
    return json.dumps({"severity": severity, "stage": "report", "status": status, "message": message, **fields})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the month's Excel report after a successful dbt build")
    parser.add_argument("--months", default="", help="invoice months the build touched, comma-separated (YYYY-MM)")
    parser.add_argument("--batch-id", default=None, help="the batch that started the build (for the log line)")
    args = parser.parse_args(argv)
    ids = {"batch_id": args.batch_id} if args.batch_id else {}
    months = [m for m in args.months.split(",") if m]
    try:
        bad = [m for m in months if not MONTH.match(m)]
        if bad:
            raise SettingError(f"--months takes YYYY-MM months, got {', '.join(bad)}")
        settings = Settings.from_env()
        if settings.reports_url is None:
            raise SettingError("RETAIL_PIPELINE_REPORTS is empty: there is nowhere to write the report")
    except ValueError as exc:  # SettingError is one
        print(_line("ERROR", "failed", f"the report step cannot start: {exc}", **ids), flush=True)
        return 2

    from .report.publish import ReportNotWritten, publish_report

    try:
        published = publish_report(settings, months)
    except ReportNotWritten as exc:
        print(_line("ERROR", "failed", str(exc), **ids), flush=True)
        return 1
    message = f"report of {published.month} written to {published.uri}"
    print(_line("INFO", "success", message, month=published.month, object=published.uri, **ids), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
