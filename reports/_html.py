"""Render ReportData into one self-contained HTML file (plotly.js embedded, opens offline)."""

from __future__ import annotations

import html
from pathlib import Path

from nets import atomic_write_text
from reports._data import ReportData, Series

MARKERS = {"Pareto front": ("#d62728", "circle", 9), "big only": ("#000000", "star", 16),
           "little only": ("#1f77b4", "diamond", 11), "other trials": ("#bbbbbb", "circle", 5)}


def _trace(series: Series, lines: bool = False):  # type: ignore[no-untyped-def]
    import plotly.graph_objects as go

    color, symbol, size = MARKERS.get(series.name, ("#2ca02c", "square", 9))
    return go.Scatter(x=series.loss_pct, y=series.energy_nj, name=series.name, text=series.labels,
                      mode="lines+markers" if lines else "markers",
                      marker={"color": color, "symbol": symbol, "size": size},
                      hovertemplate="%{text}<br>loss %{x:.3f} pp<br>energy %{y:.2f} nJ<extra></extra>")


def render_html(data: ReportData) -> str:
    """The report as one HTML string with plotly.js inlined."""
    import plotly.graph_objects as go

    figure = go.Figure([_trace(data.others), *(_trace(s) for s in data.baselines), _trace(data.front, lines=True)])
    figure.update_layout(title="Energy per inference vs. accuracy loss", xaxis_title="accuracy loss vs. big net (pp)",
                         yaxis_title="energy per inference (nJ)", yaxis_type="log", template="plotly_white",
                         height=560)
    plot = figure.to_html(full_html=False, include_plotlyjs=True, div_id="pareto-front")
    table = data.table.to_html(index=False, classes="pareto", border=0)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(data.title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}}
table.pareto{{border-collapse:collapse;font-size:0.9em}}
table.pareto td,table.pareto th{{padding:4px 8px;border-bottom:1px solid #ddd;text-align:right}}</style>
</head><body>
<h1>{html.escape(data.title)}</h1>
<p>{html.escape(data.subtitle)}</p>
<h2>Pareto front</h2>
{plot}
<h2>Pareto points</h2>
{table}
</body></html>
"""


def write_report(data: ReportData, path: str | Path) -> Path:
    """Write the report atomically and return its path."""
    path = Path(path)
    atomic_write_text(path, render_html(data))
    return path
