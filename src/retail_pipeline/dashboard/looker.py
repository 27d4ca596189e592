"""The Looker Studio Linking API URL: a new report whose BigQuery data sources are the deployed marts.

Format (https://developers.google.com/looker-studio/integrate/linking-api): the base URL, then
``key=value`` pairs joined by ``&``: ``r.reportName`` and, per mart, ``ds.<alias>.connector=bigQuery``,
``type=TABLE``, ``projectId``, ``datasetId``, ``tableId`` and ``datasourceName``. Values are
encoded like Terraform's ``urlencode`` (Go's ``url.QueryEscape``, i.e. Python's ``quote_plus``).
terraform/outputs.tf builds the ``looker_studio_url`` output from the same parameter list, in the
same order; tests/test_looker_url.py evaluates that Terraform expression and compares.
"""

from __future__ import annotations

from urllib.parse import quote_plus

BASE_URL = "https://lookerstudio.google.com/reporting/create"
DEFAULT_REPORT_NAME = "Online Retail sales"

#: The marts the report uses, one data source each (alias ds0, ds1, ... in this order).
LOOKER_MARTS = (
    "mart_revenue_daily",
    "mart_revenue_monthly",
    "mart_revenue_by_country",
    "mart_product_performance",
    "mart_customer_rfm",
    "mart_cohort_retention",
    "mart_data_quality",
    "mart_invoices",
    "mart_product_sales_daily",
)


def looker_studio_params(
    project: str, dataset: str, report_name: str = DEFAULT_REPORT_NAME, marts: tuple[str, ...] = LOOKER_MARTS
) -> list[tuple[str, str]]:
    """The Linking API parameters, in URL order."""
    if not project or not dataset:
        raise ValueError("a Looker Studio URL needs a Google Cloud project and the analytics dataset")
    params = [("r.reportName", report_name)]
    for i, mart in enumerate(marts):
        alias = f"ds.ds{i}"
        params += [
            (f"{alias}.connector", "bigQuery"),
            (f"{alias}.type", "TABLE"),
            (f"{alias}.projectId", project),
            (f"{alias}.datasetId", dataset),
            (f"{alias}.tableId", mart),
            (f"{alias}.datasourceName", mart),
        ]
    return params


def looker_studio_url(
    project: str, dataset: str, report_name: str = DEFAULT_REPORT_NAME, marts: tuple[str, ...] = LOOKER_MARTS
) -> str:
    """The Linking API URL that creates a report on the marts in ``project.dataset``."""
    query = "&".join(
        f"{key}={quote_plus(value, safe='')}"
        for key, value in looker_studio_params(project, dataset, report_name, marts)
    )
    return f"{BASE_URL}?{query}"
