"""The one schema definition: typed sales lines, quarantined rows and batch manifests.

Everything else derives from these column lists: the Arrow schemas ingest writes, the DuckDB and
BigQuery raw tables, the dbt sources (`retail-pipeline schema dbt-sources`) and the Terraform
table schema (`retail-pipeline schema bigquery-json`). Tests check that the generated files in
`dbt/` and `terraform/` equal what this module produces.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pyarrow as pa

PRICE_SCALE = 4  #: unit prices are exact decimals with this many places (NUMERIC(18, 4))


@dataclass(frozen=True)
class Column:
    """One column: its name, its types in each system, and what it means."""

    name: str
    arrow: pa.DataType
    bigquery: str
    duckdb: str
    required: bool
    description: str

    @property
    def bigquery_mode(self) -> str:
        return "REQUIRED" if self.required else "NULLABLE"


def _c(name: str, kind: str, required: bool, description: str) -> Column:
    arrow, bq, ddb = {
        "string": (pa.string(), "STRING", "VARCHAR"),
        "int": (pa.int64(), "INT64", "BIGINT"),
        "float": (pa.float64(), "FLOAT64", "DOUBLE"),
        "price": (pa.decimal128(18, PRICE_SCALE), f"NUMERIC(18, {PRICE_SCALE})", f"DECIMAL(18, {PRICE_SCALE})"),
        "datetime": (pa.timestamp("us"), "DATETIME", "TIMESTAMP"),
        "date": (pa.date32(), "DATE", "DATE"),
        "timestamp": (pa.timestamp("us", tz="UTC"), "TIMESTAMP", "TIMESTAMPTZ"),
    }[kind]
    return Column(name, arrow, bq, ddb, required, description)


LINEAGE = [
    _c("source_uri", "string", True, "Landing object the row came from (gs://bucket/name or file://...)."),
    _c("source_generation", "int", True, "Generation of the landing object; a newer one supersedes older ones."),
    _c("batch_id", "string", True, "Batch id derived from source_uri and source_generation."),
    _c("source_sheet", "string", True, "Worksheet (or file) the row was read from."),
    _c("source_row", "int", True, "1-based row number in the source sheet (the header is row 1)."),
]

SALES_LINES = [
    _c("invoice_no", "string", True, "Invoice number as text; 'C' prefix = cancellation, 'A' = bad-debt adjustment."),
    _c("stock_code", "string", True, "Product or non-product code as text (e.g. '85123A', 'POST')."),
    _c("description", "string", False, "Product description, trimmed; blank becomes null."),
    _c("quantity", "int", True, "Units on the line; negative for cancellations and stock adjustments."),
    _c(
        "invoice_datetime", "datetime", True, "Invoice date and time as written in the source (UK local time, no zone)."
    ),
    _c("invoice_date", "date", True, "Calendar day of invoice_datetime (the fact's partition key)."),
    _c("unit_price", "price", True, "Price per unit in GBP, exact decimal."),
    _c("customer_id", "string", False, "Customer number as text without '.0'; null when blank."),
    _c("country", "string", False, "Customer country, trimmed; null when blank."),
    _c("line_type", "string", True, "Classification of the line (see LINE_TYPES)."),
    _c("invoice_month", "date", True, "First day of the invoice month: the lake partition the row belongs to."),
    *LINEAGE,
]

#: Raw text of the eight source columns, kept for rows that could not be typed.
SOURCE_FIELDS = [
    "invoice_no",
    "stock_code",
    "description",
    "quantity",
    "invoice_date",
    "unit_price",
    "customer_id",
    "country",
]

QUARANTINE = [
    *[_c(f"raw_{name}", "string", False, f"Source cell '{name}' as text, exactly as read.") for name in SOURCE_FIELDS],
    _c("reason", "string", True, "Reason code of the first rule the row failed (see QUARANTINE_REASONS)."),
    _c("detail", "string", True, "Human-readable explanation of the reason."),
    *LINEAGE,
]

BATCHES = [
    _c("batch_id", "string", True, "Batch id derived from source_uri and source_generation."),
    _c("source_uri", "string", True, "Landing object of the batch."),
    _c("source_generation", "int", True, "Generation of the landing object."),
    _c("state", "string", True, "'ingested' or 'rejected'."),
    _c("error", "string", False, "Why the file was rejected; null for ingested batches."),
    _c(
        "error_code",
        "string",
        False,
        "Reason code of the rejection (see docs/reliability.md); null for ingested batches.",
    ),
    _c("rows_read", "int", True, "Data rows read from the source."),
    _c("rows_loaded", "int", True, "Typed, distinct rows written to the lake."),
    _c("rows_quarantined", "int", True, "Rows that could not be typed."),
    _c("rows_duplicate", "int", True, "Exact duplicate rows removed within the source."),
    _c("partitions", "string", True, "JSON list of lake partitions with their row counts."),
    _c("ingested_at", "timestamp", True, "When ingest finished the batch (UTC)."),
]

TABLES = {"sales_lines": SALES_LINES, "quarantine": QUARANTINE, "batches": BATCHES}

# The pipeline dataset's bookkeeping tables (created by Terraform, looked up at runtime; both
# clustered by batch_id). Not raw tables: TABLES above stays the raw dataset's list.
LOAD_LEDGER = [
    _c("batch_id", "string", True, "Batch the lake object belongs to."),
    _c("source_uri", "string", True, "Landing object of the batch."),
    _c("source_generation", "int", True, "Generation of the landing object."),
    _c("kind", "string", True, "What the lake object holds: 'sales', 'quarantine' or 'manifest'."),
    _c(
        "partition", "string", True, "Lake partition of the object (its invoice month; empty when the object has none)."
    ),
    _c("object_uri", "string", True, "Lake object that was applied."),
    _c("object_generation", "int", True, "Generation of the lake object that was applied."),
    _c("rows", "int", True, "Rows the object put into its raw table."),
    _c("loaded_at", "timestamp", True, "When the load's transaction committed (UTC)."),
    _c("load_token", "string", False, "Token unique to the load attempt that applied the object."),
]

TRANSFORM_RUNS = [
    _c("batch_id", "string", True, "Batch the dbt run is for."),
    _c("claim_key", "string", True, "Claim key: 'initial', or the replay key that asked for another run."),
    _c(
        "state",
        "string",
        True,
        "'running' from the claim until the run records its outcome (e.g. 'success', 'started', 'failed').",
    ),
    _c("started_at", "timestamp", True, "When the claim was taken (UTC)."),
    _c("finished_at", "timestamp", False, "When the run recorded its outcome (UTC); null while running."),
    _c("tests_passed", "int", False, "dbt tests that passed."),
    _c("tests_failed", "int", False, "dbt tests that failed."),
    _c("models_built", "int", False, "dbt models built."),
    _c("seconds", "float", False, "Duration of the run in seconds."),
    _c("error", "string", False, "Why the run failed; null on success."),
    _c("claim_token", "string", False, "Token unique to the claim attempt that won."),
    _c(
        "execution",
        "string",
        False,
        "Cloud Run job execution that ran dbt (projects/.../executions/...); null in-process.",
    ),
]

RETRACTIONS = [
    _c("batch_id", "string", True, "Batch whose rows were removed from the raw tables (its lake files stay)."),
    _c("source_uri", "string", True, "Landing object of the batch."),
    _c("source_generation", "int", True, "Generation of the landing object."),
    _c("retraction_id", "string", True, "One id per retraction (the batches of a source retracted together)."),
    _c("rows_removed", "int", True, "Sales lines of the batch removed from raw.sales_lines."),
    _c("quarantine_removed", "int", True, "Rows of the batch removed from raw.quarantine."),
    _c("partitions", "string", True, "JSON list of the invoice months (YYYY-MM) the removed lines were in."),
    _c("retracted_by", "string", True, "Who retracted it: the OS user or service identity, or the deletion event."),
    _c("reason", "string", False, "Why, as given (--why), or what deleted the landing object."),
    _c("retracted_at", "timestamp", True, "When the retraction's transaction committed (UTC)."),
]

PIPELINE_TABLES = {"load_ledger": LOAD_LEDGER, "transform_runs": TRANSFORM_RUNS, "retractions": RETRACTIONS}

#: Every table whose schema this module defines (what `schema bigquery-json --table` accepts).
ALL_TABLES = {**TABLES, **PIPELINE_TABLES}

LINE_TYPES = {
    "sale": "A product sold on a regular invoice.",
    "cancellation": "A line of a 'C' invoice: goods returned or an order cancelled (negative quantity).",
    "bad_debt_adjustment": "A line of an 'A' invoice: 'Adjust bad debt' bookkeeping.",
    "stock_adjustment": "Negative quantity on a regular invoice, or a zero-price line with no customer: "
    "stock written off or found ('damaged', 'lost', 'check', ...).",
    "postage": "Postage and carriage charges (POST, DOT, C2).",
    "fee": "Fees and commissions (BANK CHARGES, AMAZONFEE, CRUK).",
    "discount": "Discount lines (D).",
    "non_product": "Other non-product codes: manual (M), samples (S), PADS, B, gift vouchers, DCGS*.",
    "free_item": "A product given at unit price 0 to a known customer.",
}

QUARANTINE_REASONS = {
    "missing_invoice_no": "InvoiceNo is blank.",
    "missing_stock_code": "StockCode is blank.",
    "missing_quantity": "Quantity is blank.",
    "bad_quantity": "Quantity is text that is not a number.",
    "quantity_not_integer": "Quantity is a number with a fractional part.",
    "quantity_out_of_range": "Quantity is beyond the configured absolute limit.",
    "missing_invoice_date": "InvoiceDate is blank.",
    "bad_invoice_date": "InvoiceDate is text that is not a date.",
    "missing_unit_price": "UnitPrice is blank.",
    "bad_unit_price": "UnitPrice is text that is not a number.",
    "unit_price_precision": f"UnitPrice has more than {PRICE_SCALE} decimal places.",
    "unit_price_out_of_range": "UnitPrice is beyond the configured absolute limit.",
    "cell_too_long": "A text cell is longer than the configured limit.",
}


def arrow_schema(table: str) -> pa.Schema:
    """The Arrow schema of a table, with non-null fields for required columns."""
    return pa.schema([pa.field(c.name, c.arrow, nullable=not c.required) for c in ALL_TABLES[table]])


def duckdb_ddl(table: str, qualified_name: str, primary_key: tuple[str, ...] = ()) -> str:
    cols = [f"{c.name} {c.duckdb}{' NOT NULL' if c.required else ''}" for c in ALL_TABLES[table]]
    if primary_key:
        cols.append(f"PRIMARY KEY ({', '.join(primary_key)})")
    body = ",\n  ".join(cols)
    return f"CREATE TABLE IF NOT EXISTS {qualified_name} (\n  {body}\n)"


def bigquery_json(table: str) -> list[dict]:
    """BigQuery JSON schema (as `bq` and Terraform's google_bigquery_table take it)."""
    out = []
    for c in ALL_TABLES[table]:
        field = {
            "name": c.name,
            "type": c.bigquery.split("(")[0],
            "mode": c.bigquery_mode,
            "description": c.description,
        }
        if "(" in c.bigquery:
            precision, scale = c.bigquery.split("(")[1].rstrip(")").split(",")
            field["precision"], field["scale"] = precision.strip(), scale.strip()
        out.append(field)
    return out


def bigquery_json_text(table: str) -> str:
    return json.dumps(bigquery_json(table), indent=2) + "\n"


def dbt_sources_yaml() -> str:
    """The dbt sources file (dbt/models/staging/_sources.yml), generated from the columns above."""
    import yaml

    def table(name: str, description: str) -> dict:
        return {
            "name": name,
            "description": description,
            "columns": [
                {
                    "name": c.name,
                    "description": c.description + ("" if not c.required else " Never null (enforced by the table)."),
                    "data_type": c.bigquery.lower().replace(" ", ""),
                }
                for c in TABLES[name]
            ],
        }

    doc = {
        "version": 2,
        "sources": [
            {
                "name": "raw",
                "description": "Raw tables written by the load function (one schema definition: retail_pipeline.schema).",
                "schema": "{{ env_var('RETAIL_PIPELINE_RAW_DATASET', 'raw') }}",
                "tables": [
                    table(
                        "sales_lines",
                        "Typed invoice lines, one row per distinct line of a source; partitioned by invoice_date.",
                    ),
                    table("quarantine", "Rows that could not be typed, with the reason."),
                    {
                        **table("batches", "One row per ingested or rejected landing object (the batch manifest)."),
                        "loaded_at_field": "ingested_at",
                        "freshness": {
                            "warn_after": {"count": "{{ var('freshness_warn_hours', 36) }}", "period": "hour"}
                        },
                    },
                ],
            },
            {
                "name": "pipeline",
                "description": "Bookkeeping of the load function.",
                "schema": "{{ env_var('RETAIL_PIPELINE_PIPELINE_DATASET', 'pipeline') }}",
                "tables": [{"name": "load_ledger", "description": "One row per lake object applied to a raw table."}],
            },
        ],
    }
    header = "# Generated by `retail-pipeline schema dbt-sources` from retail_pipeline/schema.py. Do not edit.\n"
    return header + yaml.safe_dump(doc, sort_keys=False, width=120)
