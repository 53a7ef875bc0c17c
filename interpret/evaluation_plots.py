"""Figures of an evaluation's table (``advlens.evaluation.tables.case_table`` rows): metrics against the swept
value, and success rate against distortion. Plotly for the page and the HTML file; the PNG is drawn with
matplotlib from the same series, since a plotly PNG would need a browser engine (kaleido) on the machine.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interpret.plots import sweep_figure

PANELS = (("asr", "ASR %"), ("l1", "mean ℓ1"), ("l2", "mean ℓ2"), ("linf", "mean ℓ∞"))
Table = Sequence[Mapping[str, Any]]


def series_namer(table: Table) -> Callable[[Mapping[str, Any]], str]:
    """A row's series: attack · case, with the model and the parameters that differ between the table's settings
    of that attack (EAD's EN and L1 rules swept over κ are two series, not one)."""
    models = {r["model"] for r in table}
    settings: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in table:
        if r["params"] not in settings[r["attack"]]:
            settings[r["attack"]].append(r["params"])
    differ = {attack: [k for k in dict.fromkeys(k for p in ps for k in p)
                       if len({json.dumps(p.get(k), sort_keys=True) for p in ps}) > 1]
              for attack, ps in settings.items()}

    def name(row: Mapping[str, Any]) -> str:
        shown = ", ".join(f"{k}={row['params'].get(k)}" for k in differ.get(row["attack"], []))
        return (f"{row['model']}: " if len(models) > 1 else "") + row["attack"] + (f" ({shown})" if shown else "") \
            + f" · {row['case']}"

    return name


def sweep_series(table: Table) -> tuple[str, list[str], dict[str, list[Mapping[str, Any] | None]]]:
    """(swept parameter, its values as text, one metrics row per value for each attack · case)."""
    swept = [r for r in table if r.get("sweep_param")]
    if not swept:
        return "", [], {}
    param = str(swept[0]["sweep_param"])
    rows = [r for r in swept if r["sweep_param"] == param]
    labels = list(dict.fromkeys(str(r["sweep_value"]) for r in rows))
    series: dict[str, list[Mapping[str, Any] | None]] = defaultdict(lambda: [None] * len(labels))
    name_of = series_namer(rows)
    for r in rows:
        series[name_of(r)][labels.index(str(r["sweep_value"]))] = r
    return param, labels, dict(series)


def evaluation_sweep_figure(table: Table, height: int = 560) -> go.Figure | None:
    """ASR and mean distortions against the swept parameter (κ or ε curves); None without a sweep."""
    param, labels, series = sweep_series(table)
    if not series:
        return None
    return sweep_figure(labels, series, PANELS, symbol=param, styles={}, height=height)


NORM_TITLES = {"l0": "ℓ0", "l0_coords": "ℓ0 (coordinates)", "l1": "ℓ1", "l2": "ℓ2", "linf": "ℓ∞"}


def asr_distortion_figure(table: Table, height: int = 420) -> go.Figure:
    """Success rate against mean distortion: one panel per ranking norm (C&W's ℓ2 and PGD's ℓ∞ are not on one
    axis), one point per attack setting and case."""
    norms = list(dict.fromkeys(str(r["by"]) for r in table)) or ["l2"]
    fig = make_subplots(rows=1, cols=len(norms), shared_yaxes=True, horizontal_spacing=0.06,
                        subplot_titles=[f"mean {NORM_TITLES.get(n, n)}" for n in norms])
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    name_of = series_namer(table)
    for r in table:
        groups[name_of(r)].append(r)
    for name, rows in groups.items():
        col = norms.index(str(rows[0]["by"])) + 1
        fig.add_trace(go.Scatter(
            x=[r[r["by"]] for r in rows], y=[r["asr"] for r in rows], mode="markers", name=name, marker=dict(size=10),
            text=[NORM_TITLES.get(r["by"], r["by"]) + (f", {r['sweep_param']}={r['sweep_value']}"
                                                      if r.get("sweep_param") else "") for r in rows],
            hovertemplate="%{text} = %{x:.4g}<br>ASR %{y:.1f}%<extra>" + name + "</extra>"), 1, col)
    fig.update_yaxes(range=[0, 105])
    fig.update_yaxes(title_text="ASR %", col=1)
    fig.update_layout(height=height, margin=dict(l=50, r=20, t=40, b=50), legend=dict(orientation="h", y=-0.25))
    return fig


def write_plots(table: Table, directory: Path | str) -> list[Path]:
    """plots.html (interactive) and plots.png into ``directory``; returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory = Path(directory)
    figures = [f for f in (evaluation_sweep_figure(table), asr_distortion_figure(table)) if f is not None]
    html = directory / "plots.html"
    html.write_text("".join(f.to_html(full_html=False, include_plotlyjs=(i == 0))
                            for i, f in enumerate(figures)), encoding="utf-8")
    param, labels, series = sweep_series(table)
    name = series_namer(table)
    panels = PANELS if series else (("asr", "ASR %"),)
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.4), squeeze=False)
    for ax, (metric, title) in zip(axes[0], panels):
        if series:
            for label, rows in series.items():
                ax.plot(labels, [None if r is None else r[metric] for r in rows], marker="o", label=label)
            ax.set_xlabel(param)
        else:
            for r in table:
                ax.scatter(r[r["by"]] or 0.0, r["asr"], label=name(r))
            ax.set_xlabel("mean distortion (own norm)")
        ax.set_title(title)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    png = directory / "plots.png"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return [html, png]
