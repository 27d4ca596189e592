"""The model-level row_rules data tests (dbt/tests/generic/row_rules.sql): every check the project
had as one dbt test node each is still made, now one node per model, and a violated check fails the
build naming its test and the check.

FORMER lists, per model, the data tests of the models' YAML before they were folded into row_rules
(commit b1cb7ce: 123 generic tests; with the 6 singular tests, 129 test nodes), written out from
that YAML, not from the new one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import yaml

from loaded_batch import MONTHS, ingest_and_load

DBT = Path(__file__).resolve().parents[1] / "dbt"
LINE_TYPES = (
    "sale",
    "cancellation",
    "bad_debt_adjustment",
    "stock_adjustment",
    "postage",
    "fee",
    "discount",
    "non_product",
    "free_item",
)
SCORES = (1, 2, 3, 4, 5)

FORMER = {
    "stg_sales_lines": [
        ("not_null", "line_id"),
        ("accepted_values", "line_type", LINE_TYPES),
    ],
    "stg_batches": [
        ("unique", "batch_id"),
        ("not_null", "batch_id"),
        ("accepted_values", "state", ("ingested", "rejected")),
    ],
    "stg_quarantine": [
        ("not_null", "reason"),
    ],
    "fct_sales_lines": [
        ("unique", "line_id"),
        ("not_null", "line_id"),
        ("not_null", "invoice_no"),
        ("not_null", "stock_code"),
        ("relationships", "stock_code", "ref('dim_products')", "stock_code"),
        ("relationships", "customer_id", "ref('dim_customers')", "customer_id"),
        ("not_null", "line_type"),
        ("accepted_values", "line_type", LINE_TYPES),
        ("not_null", "invoice_date"),
        ("not_null", "amount"),
        ("not_null", "invoice_month"),
        ("not_null", "batch_id"),
    ],
    "dim_customers": [
        ("unique", "customer_id"),
        ("not_null", "customer_id"),
    ],
    "dim_products": [
        ("unique", "stock_code"),
        ("not_null", "stock_code"),
    ],
    "int_sales_by_invoice": [
        ("not_null", "amount"),
        ("expression_is_true", "line_count > 0"),
    ],
    "mart_cohort_retention": [
        ("unique_combination", ("cohort_month", "activity_month")),
        ("not_null", "cohort_month"),
        ("not_null", "activity_month"),
        ("expression_is_true", "activity_month >= cohort_month"),
        ("expression_is_true", "months_since_first_order >= 0"),
        ("expression_is_true", "cohort_size > 0"),
        (
            "expression_is_true",
            "active_customers <= cohort_size and (months_since_first_order > 0 or active_customers = cohort_size)",
        ),
        ("expression_is_true", "retention_rate between 0 and 1"),
    ],
    "mart_customer_rfm": [
        ("unique", "customer_id"),
        ("not_null", "customer_id"),
        ("relationships", "customer_id", "ref('dim_customers')", "customer_id"),
        ("not_null", "first_purchase_at"),
        ("not_null", "last_purchase_at"),
        ("expression_is_true", "last_purchase_at >= first_purchase_at"),
        ("not_null", "cohort_month"),
        ("expression_is_true", "orders >= 1"),
        ("expression_is_true", "recency_days >= 1"),
        ("not_null", "recency_score"),
        ("accepted_values", "recency_score", SCORES),
        ("not_null", "frequency_score"),
        ("accepted_values", "frequency_score", SCORES),
        ("not_null", "monetary_score"),
        ("accepted_values", "monetary_score", SCORES),
        ("not_null", "rfm_score"),
        ("not_null", "segment"),
        (
            "accepted_values",
            "segment",
            ("Champions", "Loyal", "New", "Potential loyalist", "At risk", "Hibernating", "Lost", "Needs attention"),
        ),
    ],
    "mart_data_quality": [
        ("unique_combination", ("batch_id", "outcome", "reason")),
        ("not_null", "batch_id"),
        ("relationships", "batch_id", "ref('stg_batches')", "batch_id"),
        ("not_null", "outcome"),
        ("accepted_values", "outcome", ("loaded", "duplicate", "quarantined", "rejected")),
        ("not_null", "reason"),
        ("not_null", "row_count"),
        ("expression_is_true", "row_count >= 0"),
    ],
    "mart_invoices": [
        ("unique_combination", ("invoice_no", "invoice_date", "country", "customer_id")),
        ("not_null", "invoice_no"),
        ("not_null", "invoice_date"),
        ("not_null", "invoice_month"),
        ("not_null", "country"),
        ("not_null", "is_order"),
        ("not_null", "is_cancellation"),
        ("expression_is_true", "gross_sales >= 0 and (is_order or gross_sales = 0)"),
        ("expression_is_true", "cancellations <= 0"),
        ("not_null", "net_revenue"),
        ("expression_is_true", "net_revenue = gross_sales + shipping + cancellations + adjustments"),
        ("expression_is_true", "lines > 0"),
    ],
    "mart_product_performance": [
        ("unique", "stock_code"),
        ("not_null", "stock_code"),
        ("relationships", "stock_code", "ref('dim_products')", "stock_code"),
        ("expression_is_true", "gross_sales >= 0"),
        ("not_null", "net_revenue"),
        ("unique", "revenue_rank"),
        ("not_null", "revenue_rank"),
        ("expression_is_true", "cumulative_share between 0 and 1.000001"),
        ("not_null", "abc_class"),
        ("accepted_values", "abc_class", ("A", "B", "C")),
    ],
    "mart_product_sales_daily": [
        ("unique_combination", ("invoice_date", "country", "stock_code")),
        ("not_null", "invoice_date"),
        ("not_null", "invoice_month"),
        ("not_null", "country"),
        ("not_null", "stock_code"),
        ("relationships", "stock_code", "ref('mart_product_performance')", "stock_code"),
        ("expression_is_true", "gross_sales >= 0"),
        ("expression_is_true", "cancellations <= 0"),
        ("not_null", "net_revenue"),
        ("expression_is_true", "net_revenue = gross_sales + cancellations"),
    ],
    "mart_revenue_by_country": [
        ("unique", "country"),
        ("not_null", "country"),
        ("not_null", "gross_sales"),
        ("expression_is_true", "gross_sales >= 0"),
        ("expression_is_true", "cancellations <= 0"),
        ("not_null", "net_revenue"),
        ("expression_is_true", "net_revenue = gross_sales + shipping + cancellations + adjustments"),
        ("not_null", "orders"),
        ("expression_is_true", "lines > 0"),
        (
            "expression_is_true",
            "(orders = 0 and average_order_value is null) or (orders > 0 and average_order_value >= 0)",
        ),
        ("unique", "revenue_rank"),
        ("not_null", "revenue_rank"),
    ],
    "mart_revenue_daily": [
        ("unique", "invoice_date"),
        ("not_null", "invoice_date"),
        ("not_null", "invoice_month"),
        ("not_null", "gross_sales"),
        ("expression_is_true", "gross_sales >= 0"),
        ("expression_is_true", "cancellations <= 0"),
        ("not_null", "net_revenue"),
        ("expression_is_true", "net_revenue = gross_sales + shipping + cancellations + adjustments"),
        ("not_null", "orders"),
        ("expression_is_true", "lines > 0"),
        (
            "expression_is_true",
            "(orders = 0 and average_order_value is null) or (orders > 0 and average_order_value >= 0)",
        ),
    ],
    "mart_revenue_monthly": [
        ("unique", "invoice_month"),
        ("not_null", "invoice_month"),
        ("not_null", "gross_sales"),
        ("expression_is_true", "gross_sales >= 0"),
        ("expression_is_true", "cancellations <= 0"),
        ("not_null", "net_revenue"),
        ("expression_is_true", "net_revenue = gross_sales + shipping + cancellations + adjustments"),
        ("not_null", "orders"),
        ("expression_is_true", "lines > 0"),
        (
            "expression_is_true",
            "(orders = 0 and average_order_value is null) or (orders > 0 and average_order_value >= 0)",
        ),
    ],
}


def _row_rules() -> tuple[dict[str, dict], int]:
    """Each model's row_rules checks (of all its row_rules tests), read from the models' YAML as it
    is now, and how many row_rules tests there are."""
    found: dict[str, dict] = {}
    nodes = 0
    for path in (DBT / "models").rglob("*.yml"):
        for model in (yaml.safe_load(path.read_text()) or {}).get("models", []):
            tests = model.get("data_tests") or []
            assert {next(iter(t)) for t in tests} <= {"row_rules"}, (model["name"], tests)
            for column in model.get("columns") or []:
                assert not column.get("data_tests"), f"{model['name']}.{column['name']}: a test node of its own"
            for test in tests:
                nodes += 1
                assert "config" not in test["row_rules"], test  # severity: the project's (error), no where
                args = test["row_rules"]["arguments"]
                merged = found.setdefault(
                    model["name"], {"not_null": [], "unique": [], "relationships": [], "rules": {}}
                )
                for kind in ("not_null", "unique", "relationships"):
                    merged[kind] += args.get(kind, [])
                assert not set(merged["rules"]) & set(args.get("rules", {})), args
                merged["rules"].update(args.get("rules", {}))
    return found, nodes


def _sql_list(values: tuple) -> str:
    return ", ".join(f"'{v}'" if isinstance(v, str) else str(v) for v in values)


def test_every_former_check_is_still_made_and_named():
    rules, nodes = _row_rules()
    assert set(rules) == set(FORMER)
    assert nodes <= len(FORMER) + 1  # one per model; the fact's relationships apart (see _core.yml)
    for model, former in FORMER.items():
        args = rules[model]
        expressions = args.get("rules", {})
        for check in former:
            kind, column = check[0], check[1]
            if kind == "not_null":
                assert column in args.get("not_null", []), (model, check)
            elif kind == "unique":  # one column: nulls left out, as dbt's unique
                assert column in args.get("unique", []), (model, check)
            elif kind == "unique_combination":
                assert list(column) in args.get("unique", []), (model, check)
            elif kind == "expression_is_true":
                assert column in expressions.values(), (model, check)
            elif kind == "accepted_values":  # nulls let by, as dbt's accepted_values
                expected = f"{column} is null or {column} in ({_sql_list(check[2])})"
                assert expressions.get(f"{column}_accepted_values") == expected, (model, check)
            elif kind == "relationships":
                link = {"column": column, "to": check[2], "field": check[3]}
                assert link in args.get("relationships", []), (model, check)
            else:
                raise AssertionError(f"unknown check {check}")
        # nothing checked now that was not checked before, and every rule has a readable name
        made = (
            len(args.get("not_null", []))
            + len(args.get("unique", []))
            + len(args.get("relationships", []))
            + len(expressions)
        )
        assert made == len(former), model
        assert all(name.replace("_", "").isalnum() and name.islower() for name in expressions), expressions
    assert sum(len(f) for f in FORMER.values()) == 123


def _data_test_rows(ctx) -> list[dict]:
    data = json.loads((ctx.settings.home / "dbt" / "target" / "run_results.json").read_text())
    return [r for r in data["results"] if r["unique_id"].startswith("test.")]


def test_a_violated_rule_fails_the_build_naming_the_test_and_the_rule(ctx, tmp_path):
    from retail_pipeline.dbt_worker import worker

    worker().close()  # a dbt process of this test's own
    try:
        batch_id = ingest_and_load(ctx, tmp_path)
        built = ctx.transformer.run([batch_id], MONTHS)
        assert built.status == "success" and built.tests_failed == 0, built
        nodes = _data_test_rows(ctx)
        assert len(nodes) == built.tests_passed == _row_rules()[1] + len(list((DBT / "tests").glob("*.sql")))
        assert len(nodes) <= 23
        # a test holding a model's own checks reads no model built from it: dbt build runs a test after
        # every model it reads, and only a test that runs first can stop the model's children
        manifest = json.loads((ctx.settings.home / "dbt" / "target" / "manifest.json").read_text())
        checked = 0
        for test in manifest["nodes"].values():
            if test["resource_type"] != "test" or (test.get("test_metadata") or {}).get("name") != "row_rules":
                continue
            own, below = test["attached_node"], set()
            stack = [own]
            while stack:
                for child in manifest["child_map"][stack.pop()]:
                    if child.startswith("model.") and child not in below:
                        below.add(child)
                        stack.append(child)
            reads = set(test["depends_on"]["nodes"]) - {own}
            if reads & below:
                assert set(test["test_metadata"]["kwargs"]) == {"relationships", "model"}, test["name"]
            checked += 1
        assert checked == _row_rules()[1]

        # one rule of each of three models broken: an invoice without its cancellation flag, a
        # product twice (a key), a customer's recency unknown (null fails an expression rule)
        with duckdb.connect(ctx.settings.warehouse[len("duckdb://") :]) as con:
            [(invoice,)] = con.execute("select min(invoice_no) from analytics.mart_invoices").fetchall()
            con.execute("update analytics.mart_invoices set is_cancellation = null where invoice_no = ?", [invoice])
            con.execute(
                "insert into analytics.dim_products select * from analytics.dim_products where stock_code = '22633'"
            )
            con.execute("update analytics.mart_customer_rfm set recency_days = null where customer_id = '13047'")
        tested = ctx.transformer.build(
            ["--select", "mart_invoices", "dim_products", "mart_customer_rfm"], command="test"
        )
        assert tested.status == "failed" and tested.tests_failed == 3, tested
        failed = {r["unique_id"].split(".")[2]: r["message"] for r in _data_test_rows(ctx) if r["status"] == "fail"}
        # dbt's count is the number of violated rules; every other selected test passed
        assert failed == {
            "mart_invoices_rules": "Got 1 result, configured to fail if != 0",
            "dim_products_rules": "Got 1 result, configured to fail if != 0",
            "mart_customer_rfm_rules": "Got 1 result, configured to fail if != 0",
        }
        errors = sorted(tested.error.split("; "))
        assert len(errors) == 3
        assert errors[0].startswith("test.retail.dim_products_rules.")
        assert errors[0].endswith("(violated: stock_code_unique (1 row))")
        assert errors[1].startswith("test.retail.mart_customer_rfm_rules.")
        assert errors[1].endswith("(violated: recency_days_at_least_1 (1 row))")
        assert errors[2].startswith("test.retail.mart_invoices_rules.")
        assert errors[2].endswith("(violated: is_cancellation_not_null (1 row))")
    finally:
        worker().close()


@pytest.mark.slow  # the job script in its own process: dbt imported and the project parsed from scratch (make test-fast leaves it out)
def test_the_dbt_job_names_the_violated_rule_too(ctx, tmp_path):
    """The Cloud Run job's entrypoint (run here on DuckDB): its recorded error names the rule."""
    batch_id = ingest_and_load(ctx, tmp_path)
    duckdb_path = Path(ctx.settings.warehouse[len("duckdb://") :])
    with duckdb.connect(str(duckdb_path)) as con:  # a batch in a state the manifest does not know
        con.execute(
            "insert into raw.batches select * replace ('bogus' as batch_id, 'unknown' as state) from raw.batches"
        )
    env = {
        **os.environ,
        "RETAIL_PIPELINE_DUCKDB_PATH": str(duckdb_path),
        "DBT_TARGET_PATH": str(tmp_path / "target"),
        "DBT_LOG_PATH": str(tmp_path / "logs"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    vars_json = json.dumps({"batch_id": batch_id, "partitions": MONTHS})
    proc = subprocess.run(
        [sys.executable, str(DBT / "entrypoint.py"), "--target", "local", "--vars", vars_json],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["status"] == "failed" and summary["tests_failed"] == 1, summary
    assert summary["error"].startswith("test.retail.stg_batches_rules."), summary
    build = json.loads((tmp_path / "target" / "run_results.json").read_text())  # kept: the build's, not show's
    assert build["args"]["which"] == "build" and any(r["status"] == "fail" for r in build["results"])
    assert summary["error"].endswith(
        "Got 1 result, configured to fail if != 0 (violated: state_accepted_values (1 row))"
    )
