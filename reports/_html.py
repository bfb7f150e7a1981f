"""Render ReportData into one self-contained HTML file (plotly.js embedded once, opens offline)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING

from dse.core.results import Panel
from nets import atomic_write_text
from reports._data import ReportData, Series

if TYPE_CHECKING:
    import plotly.graph_objects as go

MARKERS = {"Pareto front": ("#d62728", "circle", 9), "big only": ("#000000", "star", 16),
           "other trials": ("#bbbbbb", "circle", 5)}
BASELINE_STYLES = [("#1f77b4", "diamond", 11), ("#ff7f0e", "x", 11), ("#9467bd", "diamond", 9),
                   ("#2ca02c", "square", 9), ("#8c564b", "triangle-up", 10)]  # other baseline kinds, in order
STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}
table{border-collapse:collapse;font-size:0.9em}
td,th{padding:4px 8px;border-bottom:1px solid #ddd;text-align:right}"""


def _trace(series: Series, lines: bool = False, style: int = 0) -> "go.Scatter":
    import plotly.graph_objects as go

    color, symbol, size = MARKERS.get(series.name, BASELINE_STYLES[style % len(BASELINE_STYLES)])
    return go.Scatter(x=series.loss_pct, y=series.energy_nj, name=series.name, text=series.labels,
                      mode="lines+markers" if lines else "markers",
                      marker={"color": color, "symbol": symbol, "size": size},
                      hovertemplate="%{text}<br>loss %{x:.3f} pp<br>energy %{y:.2f} nJ<extra></extra>")


def _front_figure(data: ReportData) -> "go.Figure":
    import plotly.graph_objects as go

    figure = go.Figure([_trace(data.others), *(_trace(s, style=i) for i, s in enumerate(data.baselines)),
                        _trace(data.front, lines=True)])
    figure.update_layout(title="Energy per inference vs. accuracy loss", xaxis_title="accuracy loss vs. big net (pp)",
                         yaxis_title="energy per inference (nJ)", yaxis_type="log", template="plotly_white",
                         height=560)
    return figure


def _smrc_figure(data: ReportData) -> "go.Figure":
    """ROC curves of every variant (left) and margin histograms of correct vs. wrong inferences (right)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=1, cols=2, subplot_titles=("ROC of the score-margin classifier",
                                                          "margin histogram (select a net in the legend)"))
    for curve in data.smrc:
        label = f"{curve.net} (AUC {curve.auc:.3f})"
        figure.add_trace(go.Scatter(x=curve.fpr, y=curve.tpr, name=label, legendgroup=curve.net, mode="lines"), 1, 1)
        centers = [(a + b) / 2 for a, b in zip(curve.bin_edges[:-1], curve.bin_edges[1:])]
        for kind, counts in (("correct", curve.hist_correct), ("wrong", curve.hist_wrong)):
            figure.add_trace(go.Bar(x=centers, y=counts, name=f"{curve.net} {kind}", legendgroup=curve.net,
                                    showlegend=False, visible=True if curve is data.smrc[-1] else "legendonly",
                                    marker_color="#2ca02c" if kind == "correct" else "#d62728"), 1, 2)
    figure.update_xaxes(title_text="false positive rate (wrong results accepted)", row=1, col=1)
    figure.update_yaxes(title_text="true positive rate (correct results accepted)", row=1, col=1)
    figure.update_xaxes(title_text="score margin (top-1 − top-2)", row=1, col=2)
    figure.update_yaxes(title_text="samples", type="log", row=1, col=2)
    figure.update_layout(template="plotly_white", height=480, barmode="group")
    return figure


def _panel(panel: Panel, index: int) -> str:
    """One mechanism panel: a bar chart, a line chart or a table, with its caption."""
    import plotly.graph_objects as go

    head = f"<h2>{html.escape(panel.title)}</h2>\n<p>{html.escape(panel.caption)}</p>"
    if panel.kind == "table":
        rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in panel.rows)
        header = "".join(f"<th>{html.escape(c)}</th>" for c in panel.columns)
        return f"{head}\n<table><tr>{header}</tr>{rows}</table>"
    if panel.kind == "bar":
        traces = [go.Bar(x=panel.x, y=panel.y, marker_color="#1f77b4")]
    else:
        traces = [go.Scatter(x=panel.x, y=y, name=name, mode="lines", line_shape="hv")
                  for name, y in panel.series.items()]
    figure = go.Figure(traces)
    figure.update_layout(template="plotly_white", height=380, yaxis_title=panel.y_title)
    return f"{head}\n" + figure.to_html(full_html=False, include_plotlyjs=False, div_id=f"panel-{index}")


def _table(frame) -> str:  # type: ignore[no-untyped-def]
    return frame.to_html(index=False, border=0, na_rep="")


def render_html(data: ReportData) -> str:
    """The report as one HTML string with plotly.js inlined once."""
    front = _front_figure(data).to_html(full_html=False, include_plotlyjs=True, div_id="pareto-front")
    sections = [f"<h2>Pareto front</h2>\n{front}", f"<h2>Pareto points</h2>\n{_table(data.table)}",
                f"<h2>Baselines</h2>\n{_table(data.baseline_table)}"]
    if not data.certified_table.empty:
        sections.append("<h2>Certified loss budget</h2>\n<p>Each front structure's most aggressive threshold whose "
                        "held-out loss is certified within the budget (Learn then Test on calibration rows the search "
                        "never saw), with that loss, the certified upper bound, and the test split's loss.</p>\n"
                        f"{_table(data.certified_table)}")
    if data.smrc:
        smrc = _smrc_figure(data).to_html(full_html=False, include_plotlyjs=False, div_id="smrc")
        aucs = "".join(f"<tr><td>{html.escape(c.net)}</td><td>{c.auc:.4f}</td></tr>" for c in data.smrc)
        sections.append("<h2>Score-margin result classifier (test split)</h2>\n"
                        "<p>How well “margin ≥ threshold” predicts a correct inference.</p>\n"
                        f"{smrc}\n<table><tr><th>net</th><th>AUC</th></tr>{aucs}</table>")
    sections += [_panel(panel, i) for i, panel in enumerate(data.panels)]
    body = "\n".join(sections)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(data.title)}</title>
<style>{STYLE}</style></head><body>
<h1>{html.escape(data.title)}</h1>
<p>{html.escape(data.subtitle)}</p>
{body}
</body></html>
"""


def write_report(data: ReportData, path: str | Path) -> Path:
    """Write the report atomically and return its path."""
    path = Path(path)
    atomic_write_text(path, render_html(data))
    return path
