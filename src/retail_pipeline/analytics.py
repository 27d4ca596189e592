"""The analysts' API: the marts (and the fact) as pandas DataFrames, the same on DuckDB and BigQuery.

    from retail_pipeline import analytics
    analytics.marts()                          # every mart: grain, description, columns (from dbt's .yml)
    analytics.read_mart("mart_customer_rfm")   # a DataFrame: money as Decimal, dates as date, ints as Int64
    analytics.Analytics.open().read_mart_arrow("mart_product_sales_daily")   # Arrow, unsorted: big marts fast
    analytics.fact(month="2011-11", country="France")   # fact lines, filters pushed down to the warehouse

Settings default to the environment (the home's warehouse); pass ``settings=`` to read another.
What a mart is, its grain and its columns come from ``dbt/models/marts/*.yml``: one place documents
the marts for dbt docs, Looker Studio users and this API. Reading goes through the warehouse port's
``read_relation``, so nothing here knows which warehouse it talks to.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from .analytics_frames import Filter, RelationNotFound

if TYPE_CHECKING:
    import pandas
    import pyarrow

    from .config import Settings
    from .ports import Warehouse

FACT = "fct_sales_lines"
#: Sort order of fact reads (the fact's key, line_id, last so the order is total).
FACT_ORDER = ("invoice_datetime", "invoice_no", "line_id")


class AnalyticsError(LookupError):
    """An unknown mart or column, or a mart the warehouse does not hold yet: the message says which."""


@dataclass(frozen=True)
class Mart:
    """One mart as its dbt ``.yml`` documents it."""

    name: str
    grain: str  #: the 'Grain: ...' sentence of the description, e.g. 'one row per invoice month ...'
    description: str  #: the model description, doc() references left out
    columns: dict[str, str]  #: column → description, in the table's order
    key: tuple[str, ...]  #: the columns dbt tests as unique (rows are sorted by them)

    def __str__(self) -> str:
        return f"{self.name}: {self.grain}"


def _default_project() -> Path:
    from .config import DBT_PROJECT

    return DBT_PROJECT


def _clean(text: str | None) -> str:
    text = re.sub(r"\{\{.*?\}\}", " ", text or "", flags=re.S)  # {{ doc('...') }} blocks live in dbt docs
    return " ".join(text.split())


def _key(model: dict) -> tuple[str, ...]:
    """The first key of the model's row_rules test (dbt/tests/generic/row_rules.sql): a column or a
    list of columns."""
    for test in model.get("data_tests") or []:
        if isinstance(test, dict) and "row_rules" in test:
            for key in (test["row_rules"].get("arguments") or {}).get("unique") or []:
                return (key,) if isinstance(key, str) else tuple(key)
    return ()


@lru_cache(maxsize=4)
def _read_marts(marts_dir: Path) -> tuple[Mart, ...]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's: a tenth of the pure-Python time
    found = []
    for path in sorted(marts_dir.glob("*.yml")):
        for model in (yaml.load(path.read_text(encoding="utf-8"), Loader=loader) or {}).get("models", []):
            if not model["name"].startswith("mart_"):
                continue
            description = _clean(model.get("description"))
            grain = re.search(r"Grain:\s*(.+?)\.(?:\s|$)", description)
            found.append(
                Mart(
                    name=model["name"],
                    grain=grain.group(1) if grain else "",
                    description=description,
                    columns={c["name"]: _clean(c.get("description")) for c in model.get("columns", [])},
                    key=_key(model),
                )
            )
    if not found:
        raise AnalyticsError(f"no mart is documented in {marts_dir} (dbt/models/marts/*.yml)")
    return tuple(sorted(found, key=lambda m: m.name))


def marts(*, project_dir: Path | None = None) -> list[Mart]:
    """Every mart of the dbt project, by name, with its grain and column descriptions."""
    return list(_read_marts((project_dir or _default_project()).resolve() / "models" / "marts"))


def mart(name: str, *, project_dir: Path | None = None) -> Mart:
    """The mart of that name; an unknown name raises AnalyticsError listing the marts that exist."""
    known = {m.name: m for m in marts(project_dir=project_dir)}
    if name in known:
        return known[name]
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise AnalyticsError(f"there is no mart {name!r}{hint}; the marts are: {', '.join(known)}")


def month_range(month: str | date) -> tuple[date, date]:
    """First day of the month and first day of the next one, for 'YYYY-MM' (or any date in the month)."""
    if isinstance(month, date):
        first = month.replace(day=1)
    else:
        match = re.fullmatch(r"(\d{4})-(\d{2})", str(month).strip())
        if not match or not 1 <= int(match.group(2)) <= 12:
            raise ValueError(f"a month is written YYYY-MM, not {month!r}")
        first = date(int(match.group(1)), int(match.group(2)), 1)
    return first, (
        first.replace(year=first.year + 1, month=1) if first.month == 12 else first.replace(month=first.month + 1)
    )


def _not_built(name: str, exc: RelationNotFound) -> AnalyticsError:
    return AnalyticsError(
        f"{name} is not in the warehouse yet ({exc}): run `retail-pipeline run` (dbt builds the marts) first"
    )


class Analytics:
    """Reads of one warehouse's analytics layer. The module functions use one made from settings."""

    def __init__(self, warehouse: Warehouse, *, project_dir: Path | None = None, label: str = "") -> None:
        self.warehouse = warehouse
        self.project_dir = project_dir
        self.label = label  #: where the data comes from, for people (the warehouse URL)

    @classmethod
    def open(cls, settings: Settings | None = None, *, project_dir: Path | None = None) -> Analytics:
        """The analytics layer of the settings' warehouse (default: settings from the environment)."""
        from .adapters import open_warehouse
        from .config import Settings

        settings = settings or Settings.from_env()
        return cls(open_warehouse(settings), project_dir=project_dir or settings.dbt_project, label=settings.warehouse)

    def marts(self) -> list[Mart]:
        return marts(project_dir=self.project_dir)

    def _read(
        self, name: str, columns: list[str] | None, where: list[Filter] | None, order: tuple[str, ...]
    ) -> pandas.DataFrame:
        try:
            frame = self.warehouse.read_relation(name, columns=columns, where=where)
        except RelationNotFound as exc:
            raise _not_built(name, exc) from exc
        order = tuple(c for c in order if c in frame.columns)
        if order and len(frame) > 1:
            frame = frame.sort_values(list(order), kind="stable", na_position="last", ignore_index=True)
        return frame

    def read_mart(
        self, name: str, *, columns: list[str] | None = None, where: list[Filter] | None = None
    ) -> pandas.DataFrame:
        """The mart's rows, sorted by its key; ``columns`` picks some; ``where`` filters
        ``(column, operator, value)`` (operators =, <>, <, <=, >, >=) run in the warehouse."""
        return self._read(name, columns, where, self._checked(name, columns, where).key)

    def read_mart_arrow(
        self, name: str, *, columns: list[str] | None = None, where: list[Filter] | None = None
    ) -> pyarrow.Table:
        """The mart's rows as an Arrow table, in no particular order (sort them as you need, e.g.
        ``table.sort_by``): money stays exact as decimal128, no Python object per value, so a
        mart of millions of rows reads in seconds. ``columns`` and ``where`` as in :meth:`read_mart`."""
        self._checked(name, columns, where)
        try:
            return self.warehouse.read_relation_arrow(name, columns=columns, where=where)
        except RelationNotFound as exc:
            raise _not_built(name, exc) from exc

    def _checked(self, name: str, columns: list[str] | None, where: list[Filter] | None) -> Mart:
        found = mart(name, project_dir=self.project_dir)
        unknown = [c for c in [*(columns or []), *(f[0] for f in where or [])] if c not in found.columns]
        if unknown:
            raise AnalyticsError(
                f"{name} has no column {', '.join(map(repr, unknown))}; its columns are: {', '.join(found.columns)}"
            )
        return found

    def fact(
        self, month: str | date | None = None, country: str | None = None, *, columns: list[str] | None = None
    ) -> pandas.DataFrame:
        """Fact lines (fct_sales_lines), optionally of one invoice month and one country, sorted by
        invoice time. The month becomes an invoice_date range: BigQuery reads only its partitions."""
        where: list[Filter] = []
        if month is not None:
            first, after = month_range(month)
            where += [("invoice_date", ">=", first), ("invoice_date", "<", after)]
        if country is not None:
            where.append(("country", "=", country))
        return self._read(FACT, columns, where or None, FACT_ORDER)

    def fact_by_month(
        self, months: list[str], country: str | None = None, *, columns: list[str] | None = None
    ) -> Iterator[tuple[str, pandas.DataFrame]]:
        """(month, lines) for each month in turn: a fact-sized export without the fact in memory."""
        for month in months:
            yield month, self.fact(month, country, columns=columns)

    def months(self) -> list[str]:
        """The invoice months with data, oldest first ('YYYY-MM', from mart_revenue_monthly)."""
        frame = self.read_mart("mart_revenue_monthly", columns=["invoice_month"])
        return [d.strftime("%Y-%m") for d in frame["invoice_month"]]


def read_mart(
    name: str,
    *,
    columns: list[str] | None = None,
    where: list[Filter] | None = None,
    settings: Settings | None = None,
) -> pandas.DataFrame:
    """A mart as a DataFrame (see :meth:`Analytics.read_mart`); settings default to the environment."""
    return Analytics.open(settings).read_mart(name, columns=columns, where=where)


def fact(
    month: str | date | None = None,
    country: str | None = None,
    *,
    columns: list[str] | None = None,
    settings: Settings | None = None,
) -> pandas.DataFrame:
    """Fact lines of a month and/or country (see :meth:`Analytics.fact`); settings default to the environment."""
    return Analytics.open(settings).fact(month, country, columns=columns)
