"""Render ReportData into one self-contained HTML file (plotly.js embedded once, opens offline)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING

from dse import Panel
from nets import atomic_write_text
from reports._data import OTHERS_PER_TRIAL, EnergyBreakdown, Front, ReportData, Series, Sweep, Table
from reports._search import SearchData
from reports._units import scale_for

if TYPE_CHECKING:
    import plotly.graph_objects as go

MARKERS = {"Pareto front": ("#d62728", "circle", 9), "big only": ("#000000", "star", 16),
           "other trials": ("#bbbbbb", "circle", 5)}
BASELINE_STYLES = [("#1f77b4", "diamond", 11), ("#ff7f0e", "x", 11), ("#9467bd", "diamond", 9),
                   ("#2ca02c", "square", 9), ("#8c564b", "triangle-up", 10)]  # other baseline kinds, in order
STYLE = """body{font-family:system-ui,sans-serif;margin:1em auto;padding:0 1em;max-width:1200px}
.headline{font-size:1.15em;line-height:1.5;background:#f4f8fb;padding:0.8em 1em;border-left:4px solid #1f77b4}
table{border-collapse:collapse;font-size:0.9em;display:block;overflow-x:auto;max-width:100%}
td,th{padding:4px 8px;border-bottom:1px solid #ddd;text-align:right}
th{vertical-align:bottom}
.over td{background:#fde8e8}
#report-check{display:none}"""
# Records script errors and, once plotly has drawn, each plot's data points and each table's width into the page
# (#report-check), so a headless browser's --dump-dom shows them.
CHECK_SCRIPT = """<script>
window.__reportErrors = [];
window.addEventListener("error", function (e) { window.__reportErrors.push(String(e.message)); });
(function () { var original = console.error; console.error = function () {
  window.__reportErrors.push(Array.prototype.join.call(arguments, " ")); original.apply(console, arguments); }; })();
window.addEventListener("load", function () { setTimeout(function () {
  var plots = {}; document.querySelectorAll(".js-plotly-plot").forEach(function (gd) {
    plots[gd.id] = (gd.data || []).reduce(function (n, t) {
      return n + ((t.x || t.y || []).length || 0); }, 0); });
  var tables = []; document.querySelectorAll("table").forEach(function (t) {
    tables.push(Math.ceil(t.getBoundingClientRect().width)); });
  var out = document.getElementById("report-check");
  out.textContent = JSON.stringify({errors: window.__reportErrors, plots: plots, tables: tables,
                                    viewport: document.documentElement.clientWidth}); }, 500); });
</script>"""


def _scatter(series: Series, scale_factor: float, style: int = 0, text: bool = False) -> "go.Scatter":
    import plotly.graph_objects as go

    color, symbol, size = MARKERS.get(series.name, BASELINE_STYLES[style % len(BASELINE_STYLES)])
    return go.Scatter(x=series.loss_pct, y=[e / scale_factor for e in series.energy_j], name=series.name,
                      text=series.labels, mode="markers+text" if text else "markers", textposition="top right",
                      marker={"color": color, "symbol": symbol, "size": size},
                      hovertemplate="%{text}<br>loss %{x:.3f} pp<br>energy %{y:.4g}<extra></extra>")


def _front_figure(front: Front) -> "go.Figure":
    """Energy vs accuracy loss on one split: trials, baselines, the front labelled by trial, over-limit points."""
    import plotly.graph_objects as go

    everything = front.front.energy_j + front.others.energy_j + [e for b in front.baselines for e in b.energy_j]
    scale = scale_for(everything, "J")
    traces = [_scatter(front.others, scale.factor), *(_scatter(s, scale.factor, i) for i, s in
                                                      enumerate(front.baselines)),
              _scatter(front.front, scale.factor, text=True)]
    traces[-1].update(mode="lines+markers+text", customdata=front.gap_pct,
                      hovertemplate="%{text}<br>loss %{x:.3f} pp (gap to calib %{customdata:+.3f})<br>"
                                    "energy %{y:.4g}<extra></extra>")
    over = [i for i, flag in enumerate(front.over_limit) if flag]
    if over:
        traces.append(go.Scatter(x=[front.front.loss_pct[i] for i in over],
                                 y=[front.front.energy_j[i] / scale.factor for i in over], mode="markers",
                                 name=f"beyond the limit on {front.split}",
                                 marker={"symbol": "x-open", "size": 18, "color": "#d62728"}))
    figure = go.Figure(traces)
    if front.max_accuracy_loss_pct is not None:
        figure.add_vline(x=front.max_accuracy_loss_pct, line_dash="dash", line_color="#d62728",
                         annotation_text="loss limit")
    figure.update_layout(title=f"Energy per inference vs accuracy loss ({front.split} split)",
                         xaxis_title="accuracy loss vs big net (pp)",
                         yaxis_title=f"energy per inference ({scale.unit})", yaxis_type="log",
                         template="plotly_white", height=520)
    return figure


def _margin_figure(data: ReportData) -> "go.Figure":
    """ROC curves of every variant (left) and margin histograms of correct vs wrong inferences (right)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=1, cols=2, subplot_titles=("ROC of the score-margin classifier",
                                                          "margin histogram (select a net in the legend)"))
    for curve in data.margins:
        figure.add_trace(go.Scatter(x=curve.fpr, y=curve.tpr, name=f"{curve.net} (AUC {curve.auc:.3f})",
                                    legendgroup=curve.net, mode="lines"), 1, 1)
        centers = [(a + b) / 2 for a, b in zip(curve.bin_edges[:-1], curve.bin_edges[1:])]
        for kind, counts in (("correct", curve.hist_correct), ("wrong", curve.hist_wrong)):
            figure.add_trace(go.Bar(x=centers, y=counts, name=f"{curve.net} {kind}", legendgroup=curve.net,
                                    showlegend=False, visible=True if curve is data.margins[-1] else "legendonly",
                                    marker_color="#2ca02c" if kind == "correct" else "#d62728"), 1, 2)
    figure.update_xaxes(title_text="false positive rate (wrong results accepted)", row=1, col=1)
    figure.update_yaxes(title_text="true positive rate (correct results accepted)", row=1, col=1)
    figure.update_xaxes(title_text="score margin (top-1 − top-2)", row=1, col=2)
    figure.update_yaxes(title_text="samples", type="log", row=1, col=2)
    figure.update_layout(template="plotly_white", height=480, barmode="group")
    return figure


def _breakdown_figure(breakdown: EnergyBreakdown) -> "go.Figure":
    """Stacked expected energy per component for every Pareto point."""
    import plotly.graph_objects as go

    scale = scale_for([sum(v) for v in zip(*breakdown.energy_j.values())], "J")
    figure = go.Figure([go.Bar(x=breakdown.points, y=scale.apply(values), name=part)
                        for part, values in breakdown.energy_j.items() if any(values)])
    figure.update_layout(barmode="stack", template="plotly_white", height=420,
                         yaxis_title=f"expected energy per inference ({scale.unit})", xaxis_title="Pareto point")
    return figure


def _sweep_figure(sweep: Sweep) -> "go.Figure":
    import plotly.graph_objects as go

    scale = scale_for(sweep.energy_j, "J")
    figure = go.Figure([go.Scatter(x=[str(x) for x in sweep.x], y=scale.apply(sweep.energy_j), mode="lines+markers",
                                   text=[f"trial.point {p}, calib loss {loss:.3f} pp" for p, loss in
                                         zip(sweep.points, sweep.loss_pct)], name=sweep.name)])
    figure.update_layout(template="plotly_white", height=340, xaxis_title=sweep.name, xaxis_type="category",
                         yaxis_title=f"least feasible calib energy ({scale.unit})")
    return figure


def _importance_figure(search: SearchData) -> "go.Figure":
    import plotly.graph_objects as go

    figure = go.Figure([go.Bar(y=list(values), x=list(values.values()), name=objective, orientation="h")
                        for objective, values in search.importances.items()])
    figure.update_layout(template="plotly_white", height=360, barmode="group", xaxis_title=f"importance: {search.importance_method}")
    return figure


def _history_figure(search: SearchData) -> "go.Figure":
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    history = search.history
    assert history is not None
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    scale = scale_for(history.values[0], history.units[0])
    values = scale.apply(history.values[0])
    for feasible, name, color in ((True, "feasible", "#1f77b4"), (False, "infeasible", "#bbbbbb")):
        keep = [i for i, f in enumerate(history.feasible) if f == feasible]
        figure.add_trace(go.Scatter(x=[history.trials[i] for i in keep], y=[values[i] for i in keep], mode="markers",
                                    name=f"{history.labels[0]}, {name}", marker_color=color), secondary_y=False)
    volume = scale_for(history.hypervolume, history.hypervolume_unit)
    figure.add_trace(go.Scatter(x=history.trials, y=volume.apply(history.hypervolume), name="hypervolume (feasible)",
                                line_shape="hv", line_color="#d62728"), secondary_y=True)
    figure.update_layout(template="plotly_white", height=380, xaxis_title="trial")
    figure.update_yaxes(title_text=f"{history.labels[0]} ({scale.unit})", type="log", secondary_y=False)
    figure.update_yaxes(title_text=f"hypervolume ({volume.unit})", secondary_y=True)
    return figure


def _table(table: Table, over_column: str | None = None) -> str:
    header = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    over = table.columns.index(over_column) if over_column in table.columns else None
    rows = "".join(("<tr class=\"over\">" if over is not None and row[over] else "<tr>")
                   + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in table.rows)
    return f"<table><tr>{header}</tr>{rows}</table>"


def _panel(panel: Panel, index: int) -> str:
    """One mechanism panel: a bar chart, a line chart or a table, with its caption."""
    import plotly.graph_objects as go

    head = f"<h3>{html.escape(panel.title)}</h3>\n<p>{html.escape(panel.caption)}</p>"
    if panel.kind == "table":
        return f"{head}\n{_table(Table(panel.title, panel.caption, panel.columns, panel.rows))}"
    if panel.kind == "bar":
        traces = [go.Bar(x=panel.x, y=panel.y, marker_color="#1f77b4")]
    else:
        traces = [go.Scatter(x=panel.x, y=y, name=name, mode="lines", line_shape="hv")
                  for name, y in panel.series.items()]
    figure = go.Figure(traces)
    figure.update_layout(template="plotly_white", height=380, yaxis_title=panel.y_title)
    return f"{head}\n" + _div(figure, f"panel-{index}")


def _div(figure: "go.Figure", div_id: str) -> str:
    return figure.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                          config={"responsive": True, "displaylogo": False})


def _sections(data: ReportData) -> list[str]:
    """Each present section's HTML, in reading order."""
    out = [f'<p class="headline" id="headline">{html.escape(data.headline.sentence())}</p>']
    if data.certificate_note:
        out.append(f'<p id="certificate">{html.escape(data.certificate_note)}</p>')
    if "configuration" in data.sections:
        out.append(f"<h2>Configuration</h2>\n<p>{html.escape(data.configuration.caption)}</p>\n"
                   f"{_table(data.configuration)}")
    if "chains" in data.sections:
        out.append(f"<h2>{data.chains.title}</h2>\n<p>{html.escape(data.chains.caption)}</p>\n{_table(data.chains)}")
    figures: list[tuple[str, str, "go.Figure | None"]] = []  # (heading and text, div id, figure or none to draw)
    for front in data.fronts:
        text = (f"<h2>Pareto front, {front.split} split</h2>\n<p>Points are labelled trial.point; a red ✕ marks a point "
                f"whose {front.split} loss exceeds the limit. Hover shows the gap to its calibration loss. Of the "
                f"other trials, at most {OTHERS_PER_TRIAL} points each are drawn, spread along its front (trials.csv "
                f"lists them all).</p>")
        figures.append((text, f"front-{front.split}", _front_figure(front)))
    if "breakdown" in data.sections:
        reach = Table("", "", ["Pareto point", *[f"stage {i + 1} reached (%)" for i in
                                                 range(max(len(r) for r in data.breakdown.stage_reach))]],
                      [[p, *[f"{100 * r:.4g}" for r in reach]] for p, reach in
                       zip(data.breakdown.points, data.breakdown.stage_reach)])
        figures.append(("<h2>Energy breakdown (test split)</h2>\n<p>Expected energy per inference by component: "
                        "each stage's cost weighted by how often it runs.</p>", "breakdown",
                        _breakdown_figure(data.breakdown)))
    else:
        reach = None
    if data.margins:
        figures.append(("<h2>Score-margin result classifier (test split)</h2>\n<p>How well “margin ≥ threshold” "
                        "predicts a correct inference.</p>", "margins", _margin_figure(data)))
    for i, sweep in enumerate(data.sweeps):
        figures.append((f"<h3>Sweep: {html.escape(sweep.name)}</h3>", f"sweep-{i}", _sweep_figure(sweep)))
    if "importances" in data.notes:  # nothing worth drawing: the sentence alone
        figures.append((f"<h2>Parameter importances</h2>\n<p>{html.escape(data.notes['importances'])}</p>",
                        "importances", None))
    elif data.search and data.search.importances:
        figures.append(("<h2>Parameter importances</h2>", "importances", _importance_figure(data.search)))
    if data.search and data.search.history:
        history = data.search.history
        figures.append(("<h2>Optimisation history</h2>\n<p>Each trial's "
                        f"{html.escape(history.labels[0])}, and the hypervolume of the feasible trials so far: the "
                        f"volume, in {html.escape(history.hypervolume_unit)}, that they dominate up to a reference "
                        "point 10 % beyond the worst feasible value of each objective. It grows as the front "
                        "improves.</p>", "history", _history_figure(data.search)))
    for text, div_id, figure in figures:
        out.append(text if figure is None else f"{text}\n{_div(figure, div_id)}")
        if div_id == "front-test":
            out.append(f"<h2>{data.pareto_table.title}</h2>\n<p>{data.pareto_table.caption}</p>\n"
                       f"{_table(data.pareto_table, 'over the limit on test')}")
            if "baselines" in data.sections:
                out.append(f"<h2>{data.baseline_table.title}</h2>\n<p>{data.baseline_table.caption}</p>\n"
                           f"{_table(data.baseline_table)}")
        if div_id == "breakdown" and reach is not None:
            out.append(f"<h3>Stage reach (test split)</h3>\n{_table(reach)}")
            mapping = data.breakdown.mapping_table
            if mapping.rows:
                out.append(f"<h3>{mapping.title}</h3>\n<p>{html.escape(mapping.caption)}</p>\n{_table(mapping)}")
    if "certified" in data.sections:
        out.append(f"<h2>{data.certified.title}</h2>\n<p>{html.escape(data.certified.caption)}</p>\n"
                   f"{_table(data.certified)}")
    if data.panels:
        out.append("<h2>Mechanisms</h2>")
        out += [_panel(panel, i) for i, panel in enumerate(data.panels)]
    if "settings" in data.sections:
        out.append(f"<h2>{data.settings.title}</h2>\n<p>{data.settings.caption}</p>\n{_table(data.settings)}")
    if "spec" in data.sections and data.spec is not None:
        out.append(f"<h2>{data.spec.title}</h2>\n<p>{data.spec.caption}</p>\n{_table(data.spec)}")
    return out


def render_html(data: ReportData) -> str:
    """The report as one HTML string with plotly.js inlined once."""
    from plotly.offline import get_plotlyjs

    body = "\n".join(_sections(data))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(data.title)}</title>
<style>{STYLE}</style>{CHECK_SCRIPT}
<script type="text/javascript">{get_plotlyjs()}</script></head><body>
<h1>{html.escape(data.title)}</h1>
<p>{html.escape(data.subtitle)}</p>
{body}
<pre id="report-check"></pre>
</body></html>
"""


def write_report(data: ReportData, path: str | Path) -> Path:
    """Write the report atomically and return its path."""
    path = Path(path)
    atomic_write_text(path, render_html(data))
    return path
