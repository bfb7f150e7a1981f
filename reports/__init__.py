"""HTML reports of finished studies: compute the figures' data first, then render it."""

from reports._data import (FRONT_NOTE, EnergyBreakdown, Front, ReportData, Series, Sweep, Table, build_report_data,
                           metric_table, point_status)
from reports._html import render_html, write_report
from reports._search import History, SearchData, search_data

__all__ = ["FRONT_NOTE", "EnergyBreakdown", "Front", "History", "ReportData", "SearchData", "Series", "Sweep", "Table",
           "build_report_data", "metric_table", "point_status", "render_html", "search_data", "write_report"]
