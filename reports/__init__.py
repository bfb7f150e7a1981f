"""HTML reports of finished studies: compute the figures' data first, then render it."""

from reports._data import ReportData, Series, build_report_data
from reports._html import render_html, write_report

__all__ = ["ReportData", "Series", "build_report_data", "render_html", "write_report"]
