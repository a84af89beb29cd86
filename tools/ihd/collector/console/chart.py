"""Server-rendered SVG charts (no JavaScript, no library): demand in W over
time as a line, energy per hour in Wh as bars, on one shared time axis."""

from __future__ import annotations

import time
from html import escape

W, H = 860, 300  # whole SVG
LEFT, RIGHT = 64, 16
DEMAND_TOP, DEMAND_H = 16, 150
ENERGY_TOP, ENERGY_H = 196, 70


def _nice(v: float) -> float:
    """A round axis maximum >= v."""
    if v <= 0:
        return 1
    mag = 10 ** (len(str(int(v))) - 1)
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * mag:
            return m * mag
    return 10 * mag


def _label(t: int, span: int) -> str:
    g = time.gmtime(t)
    return time.strftime("%H:%M" if span <= 2 * 86400 else "%a %d", g)


def consumption_svg(demand: list[tuple], energy: list[tuple[int, int]], t0: int, t1: int) -> str:
    """demand [(utc_s, mean W, max W)], energy [(hour utc_s, Wh)] over [t0, t1)."""
    span = max(1, t1 - t0)
    pw = W - LEFT - RIGHT

    def x(t: float) -> float:
        return LEFT + (t - t0) * pw / span

    dmax = _nice(max([d[1] for d in demand] + [1]))
    emax = _nice(max([e[1] for e in energy] + [1]))
    out = [
        f'<svg id="consumption" class="chart" viewBox="0 0 {W} {H}" width="{W}" height="{H}" '
        f'role="img" aria-label="Demand and energy per hour" data-t0="{t0}" data-t1="{t1}">'
    ]
    # grid and axes
    for i in range(5):
        y = DEMAND_TOP + DEMAND_H * i / 4
        out.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}"/>')
        out.append(f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{dmax * (4 - i) / 4:g}</text>')
    out.append(f'<text class="axis unit" x="4" y="{DEMAND_TOP + 4}">W</text>')
    base = ENERGY_TOP + ENERGY_H
    out.append(f'<line class="grid" x1="{LEFT}" y1="{ENERGY_TOP}" x2="{W - RIGHT}" y2="{ENERGY_TOP}"/>')
    out.append(f'<line class="axisline" x1="{LEFT}" y1="{base}" x2="{W - RIGHT}" y2="{base}"/>')
    out.append(f'<text class="axis" x="{LEFT - 6}" y="{ENERGY_TOP + 4}" text-anchor="end">{emax:g}</text>')
    out.append(f'<text class="axis unit" x="4" y="{ENERGY_TOP + 4}">Wh/h</text>')
    step = 3600 * (3 if span <= 86400 else 24)
    tick = t0 - t0 % step + step
    while tick < t1:
        xt = x(tick)
        out.append(f'<line class="grid" x1="{xt:.1f}" y1="{DEMAND_TOP}" x2="{xt:.1f}" y2="{base}"/>')
        out.append(f'<text class="axis" x="{xt:.1f}" y="{base + 16}" text-anchor="middle">{_label(tick, span)}</text>')
        tick += step
    # energy bars, one per hour
    bw = max(1.0, 3600 * pw / span - 1)
    for h, wh in energy:
        bh = ENERGY_H * wh / emax
        out.append(
            f'<rect class="energy" x="{x(h):.1f}" y="{base - bh:.1f}" width="{bw:.1f}" height="{bh:.1f}">'
            f"<title>{escape(time.strftime('%Y-%m-%d %H:00', time.gmtime(h)))} UTC: {wh} Wh</title></rect>"
        )
    # demand line
    pts = " ".join(f"{x(t):.1f},{DEMAND_TOP + DEMAND_H * (1 - w / dmax):.1f}" for t, w, _m in demand)
    out.append(f'<polyline class="demand" data-n="{len(demand)}" points="{pts}"/>')
    if not demand:
        out.append(f'<text class="empty" x="{W / 2}" y="{DEMAND_TOP + DEMAND_H / 2}" text-anchor="middle">')
        out.append("no readings in this period</text>")
    out.append("</svg>")
    return "".join(out)
