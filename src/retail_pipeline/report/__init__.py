"""The Excel report for people who work in spreadsheets (openpyxl, native charts, streamed sheets)."""

from .writer import ReportError, ReportResult, report_object_name, write_report, write_report_to_store

__all__ = ["ReportError", "ReportResult", "report_object_name", "write_report", "write_report_to_store"]
