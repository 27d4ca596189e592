"""No secrets in the repository; logs are structured JSON with ids and counts, never file contents."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from pathlib import Path

from helpers import good_row, write_workbook

REPO = Path(__file__).resolve().parents[1]


def tracked_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [f for f in out.split("\0") if f and (REPO / f).is_file()]


def test_secret_scanner_finds_nothing_in_the_tracked_files():
    files = tracked_files()
    assert len(files) > 20
    scanner = Path(sys.executable).parent / "detect-secrets"
    proc = subprocess.run([str(scanner), "scan", *files], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    findings = json.loads(proc.stdout)["results"]
    assert findings == {}, json.dumps(findings, indent=2)


def test_secret_scanner_would_see_a_key(tmp_path):
    """The scan above can fail: the same scanner flags a planted credential."""
    planted = tmp_path / "settings.py"
    import base64
    import hashlib

    token = base64.b64encode(hashlib.sha256(b"planted").digest()).decode()  # made at run time: this file stays clean
    planted.write_text(f'password = "{token}"\n')
    scanner = Path(sys.executable).parent / "detect-secrets"
    proc = subprocess.run(
        [str(scanner), "scan", planted.name], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert json.loads(proc.stdout)["results"] != {}


def test_no_key_files_tracked():
    for name in tracked_files():
        assert not name.endswith((".pem", ".p12", ".key")), name
        assert "service-account" not in name.lower() or name.endswith((".tf", ".md", ".py")), name


def test_function_logs_are_json_with_severity_message_batch_and_no_contents(ctx, tmp_path):
    from retail_pipeline.logs import setup_function_logging
    from retail_pipeline.stages import ingest_landing_object

    marker = "CONFIDENTIAL-CUSTOMER-NOTE-4711"
    book = write_workbook(tmp_path / "b.xlsx", [good_row(description=marker), good_row(stock=2, qty="x")])
    stream = io.StringIO()
    logger = logging.getLogger("retail_pipeline")
    saved = list(logger.handlers)
    logger.handlers.clear()
    try:
        setup_function_logging(stream)
        info = ctx.landing.put("b.xlsx", book)
        result = ingest_landing_object(info.bucket, "b.xlsx", info.generation)
        junk = ctx.landing.put("junk.xlsx", b"not a workbook " + marker.encode())
        ingest_landing_object(junk.bucket, "junk.xlsx", junk.generation)
    finally:
        logger.handlers[:] = saved
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) >= 2
    for entry in lines:
        assert {"severity", "message", "time"} <= set(entry)
        assert entry["severity"] in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
    assert any(e.get("batch_id") == result["batch_id"] and e["severity"] == "INFO" for e in lines)
    assert any(e["severity"] == "WARNING" and e.get("reason") == "not_a_workbook" for e in lines)
    assert marker not in stream.getvalue()
