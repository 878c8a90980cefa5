"""Geometry of the small inline-SVG charts: metric bars beside the parents', interference heatmap,
the objective of each search candidate."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from registry.service.catalog.web_views import MetricRow
from registry.views import SearchRecord

BAR_MAX_W = 220  # label column 150 px, value text after the bar: 440 px in all
BAR_H = 16


@dataclass
class Bar:
    label: str
    value: float
    width: float
    own: bool  # this version's value (the parents' are drawn muted)


def metric_bars(row: MetricRow) -> list[Bar]:
    """This version first, then each parent, scaled to the largest absolute value of the row."""
    values = [("this version", row.value, True)] + [
        (label, value, False) for label, value in sorted(row.parents.items())
    ]
    finite = [abs(v) for _, v, _ in values if math.isfinite(v)]
    top = max(finite, default=0.0) or 1.0
    return [
        Bar(label, value, BAR_MAX_W * abs(value) / top if math.isfinite(value) else 0.0, own)
        for label, value, own in values
    ]


def candidate_bars(search: SearchRecord) -> list[Bar]:
    """One bar per search candidate: its objective value, scaled to the largest |value|; the winner's
    drawn as `own`. Label: index, method and scale."""
    name = str(search.objective.get("evaluation", ""))
    values = [
        (
            f"#{c.index} {c.method or ''}{'' if c.scale == 1.0 else f' x{c.scale:g}'}",
            c.objective if c.objective is not None else c.metrics.get(name, math.nan),
            c.winner or c.index == search.winner,
        )
        for c in search.candidates
    ]
    finite = [abs(v) for _, v, _ in values if math.isfinite(v)]
    top = max(finite, default=0.0) or 1.0
    return [
        Bar(label, value, BAR_MAX_W * abs(value) / top if math.isfinite(value) else 0.0, own)
        for label, value, own in values
    ]


@dataclass
class Cell:
    x: int
    y: int
    value: float | None
    fill: str


def _fill(value: float | None) -> str:
    """Diverging scale: red for aligned deltas (cosine > 0), blue for opposed, white near zero."""
    if value is None or not math.isfinite(value):
        return "#eeeeee"
    v = max(-1.0, min(1.0, value))
    fade = round(255 * (1 - abs(v)))
    return f"rgb(255,{fade},{fade})" if v >= 0 else f"rgb({fade},{fade},255)"


def heatmap(interference: dict[str, Any], labels: list[str]) -> list[Cell]:
    """n x n cells of the pairwise RMS cosine; the diagonal (an input with itself) is 1."""
    n = len(labels)
    grid: dict[tuple[int, int], float] = {(i, i): 1.0 for i in range(n)}
    for pair in interference.get("pairs", []) or []:
        try:
            i, j, value = int(pair["i"]), int(pair["j"]), float(pair["rms_cosine"])
        except (KeyError, TypeError, ValueError):
            continue
        if 0 <= i < n and 0 <= j < n:
            grid[(i, j)] = grid[(j, i)] = value
    # The diagonal is 1 by definition: grey, so the colour scale speaks only of the pairs.
    return [
        Cell(x, y, grid.get((y, x)), "#d5dbe1" if x == y else _fill(grid.get((y, x))))
        for y in range(n)
        for x in range(n)
    ]
