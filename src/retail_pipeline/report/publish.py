"""The month's report after a successful dbt build: which month, where it goes, and what a failure leaves.

With ``RETAIL_PIPELINE_REPORTS`` set (``Settings.reports``: ``gs://BUCKET/PREFIX/`` or a folder), the
step that saw a build succeed writes one workbook: the embedded transform (:func:`report_after_build`)
or, in GCP and on the emulator chain, the dbt Cloud Run job (``dbt/entrypoint.py`` runs
:mod:`retail_pipeline.report_job`). The month is the latest invoice month the build touched that has
data (a correction of March rewrites March's report), else the latest month with data; the object is
``PREFIX/online-retail-YYYY-MM.xlsx``, rewritten by the next build that touches the month.

A report is a by-product of the data: when it cannot be written, the build stays a success, the
failure is logged as ``{"stage": "report", "status": "failed", ...}`` and noted on the run
(:data:`NOTE` + the reason, shown by ``retail-pipeline status``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..adapters import open_store
from ..analytics import Analytics
from .writer import ReportError, report_object_name, write_report_to_store

if TYPE_CHECKING:
    from ..config import Settings
    from ..context import Context
    from ..ports import TransformResult

log = logging.getLogger(__name__)

NOTE = "report not written: "  #: how a run's record notes a report that failed (the build succeeded)


class ReportNotWritten(RuntimeError):
    """The month's report could not be written; the message says which, where, and why."""


@dataclass(frozen=True)
class PublishedReport:
    month: str  #: 'YYYY-MM'
    uri: str  #: where it went (gs://... or file://...)
    generation: int


def report_month(touched: Iterable[str], months: list[str]) -> str:
    """The latest of the TOUCHED months ('YYYY-MM') that has data, else the latest month with data."""
    with_data = set(months)
    candidates = [m for m in touched if m in with_data]
    if candidates:
        return max(candidates)
    if months:
        return months[-1]
    raise ReportError("the marts hold no data yet: there is no month to report")


def publish_report(settings: Settings, touched: Iterable[str], *, source: Analytics | None = None) -> PublishedReport:
    """Write the report of the month :func:`report_month` picks to the reports location of SETTINGS.

    Reads the marts from ``source`` (default: the settings' warehouse). Any failure is
    :class:`ReportNotWritten`: a report is a by-product, and whatever stops it (no data, a refused
    write, a full disk, the warehouse unreachable) must not look like a failed build to the caller."""
    target = settings.reports_url
    if target is None:
        raise ReportNotWritten("reports are off: RETAIL_PIPELINE_REPORTS is empty")
    month = None
    try:
        source = source or Analytics.open(settings)
        month = report_month(touched, source.months())
        store = open_store(target.store, settings)
        info = write_report_to_store(store, report_object_name(month, target.prefix), month=month, source=source)
    except Exception as exc:  # every cause ends the same way: logged, noted, the data untouched
        which = f"the report of {month}" if month else "the month's report"
        raise ReportNotWritten(f"{which} was not written to {target}: {type(exc).__name__}: {exc}") from exc
    return PublishedReport(month, store.uri(info.name), info.generation)


def report_after_build(
    ctx: Context, batch_ids: list[str], claim_key: str, result: TransformResult, touched: list[str]
) -> PublishedReport | None:
    """The embedded transform's report step, after the build RESULT succeeded and was recorded: write
    the report when the settings ask for one; on failure log it and note it on the batches' run
    records (their state stays a success). Never raises."""
    if not ctx.settings.reports or result.status != "success":
        return None
    batch_id = batch_ids[0]
    source = Analytics(ctx.warehouse, project_dir=ctx.settings.dbt_project, label=ctx.settings.warehouse)
    try:
        published = publish_report(ctx.settings, touched, source=source)
    except ReportNotWritten as exc:
        log.error(str(exc), extra={"stage": "report", "status": "failed", "batch_id": batch_id})
        noted = replace(result, error=(NOTE + str(exc))[:4000])
        try:
            for claimed in batch_ids:
                ctx.warehouse.finish_transform(claimed, claim_key, noted)
        except Exception as note_exc:  # the note is a courtesy: the failure is logged above either way
            log.warning("the report failure could not be noted on the run: %s", note_exc, extra={"batch_id": batch_id})
        return None
    log.info(
        "report of %s written to %s",
        published.month,
        published.uri,
        extra={"stage": "report", "status": "success", "batch_id": batch_id, "object": published.uri},
    )
    return published
