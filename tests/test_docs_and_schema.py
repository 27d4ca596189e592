"""Docs match the code: every command is documented; generated schema files equal the definition."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from retail_pipeline import schema
from retail_pipeline.cli import cli

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def test_every_command_is_documented_in_the_readme():
    for name in cli.commands:
        assert f"retail-pipeline {name}" in README, f"README lacks `retail-pipeline {name}`"


def test_every_command_has_help():
    runner = CliRunner()
    for name in cli.commands:
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output, name


def test_readme_lists_every_line_type_and_quarantine_reason():
    for name in [*schema.LINE_TYPES, *schema.QUARANTINE_REASONS]:
        assert f"`{name}`" in README, name


def test_readme_documents_every_limit_variable():
    from dataclasses import fields

    from retail_pipeline.config import Limits

    for f in fields(Limits):
        assert f"RETAIL_PIPELINE_{f.name.upper()}" in README


def test_dbt_sources_file_is_generated_from_the_schema():
    assert (REPO / "dbt/models/staging/_sources.yml").read_text() == schema.dbt_sources_yaml()


def test_schema_command_prints_bigquery_json_from_the_definition():
    import json

    result = CliRunner().invoke(cli, ["schema", "bigquery-json", "--table", "sales_lines"])
    fields = json.loads(result.output)
    assert [f["name"] for f in fields] == [c.name for c in schema.SALES_LINES]
    price = next(f for f in fields if f["name"] == "unit_price")
    assert (price["type"], price["precision"], price["scale"]) == ("NUMERIC", "18", str(schema.PRICE_SCALE))


def test_arrow_duckdb_and_bigquery_agree_on_required_columns():
    for table, columns in schema.TABLES.items():
        arrow = schema.arrow_schema(table)
        ddl = schema.duckdb_ddl(table, "t")
        bq = schema.bigquery_json(table)
        for column, field, bq_field in zip(columns, arrow, bq):
            assert field.nullable is (not column.required)
            assert bq_field["mode"] == ("REQUIRED" if column.required else "NULLABLE")
            assert re.search(
                rf"\b{column.name} \S+(\(\d+, \d+\))?{' NOT NULL' if column.required else ''}[,\n]", ddl + "\n"
            )
