#!/usr/bin/env python3
"""Draws the benchmark scripts' results as SVG (no dependencies beyond Python 3).

plot-bench.py saturate STEPS_CSV OUT_SVG   delivered Gbit/s and p99 latency against offered load,
                                           per relay and frame size (scripts/bench-saturate.sh)
plot-bench.py sessions RSS_CSV OUT_SVG     relay RSS against connected sessions, per relay
                                           (scripts/bench-sessions.sh)
plot-bench.py join JOINS_CSV OUT_SVG       the join-time distribution (CDF) per relay and path
                                           (scripts/bench-join.sh)
"""
import csv
import sys
from collections import defaultdict

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
W, H = 460, 300  # one panel
L, R, T, B = 62, 16, 34, 46  # margins


def nice_max(v):
    if v <= 0:
        return 1.0
    step = 10 ** len(str(int(v))) / 100 if v >= 1 else 0.1
    while step * 10 < v:
        step *= 2
    m = step
    while m < v:
        m += step
    return m


def panel(x0, y0, title, xlabel, ylabel, series, hline=None, xcap=None, ycap=None):
    """series: list of (label, [(x, y), ...]); xcap and ycap clip an axis (a long tail, seconds of
    latency past saturation). Returns SVG elements."""
    xs = [x for _, pts in series for x, _ in pts] or [1]
    ys = [y for _, pts in series for _, y in pts] or [1]
    xmax = nice_max(min(max(xs), xcap) if xcap else max(xs))
    ymax = nice_max(min(max(ys + ([hline] if hline else [])), ycap or float("inf")))
    pw, ph = W - L - R, H - T - B

    def px(x):
        return x0 + L + pw * min(x, xmax) / xmax

    def py(y):
        return y0 + T + ph * (1 - min(y, ymax) / ymax)

    out = [f'<text x="{x0 + W / 2}" y="{y0 + 18}" text-anchor="middle" font-weight="bold">{title}</text>']
    out.append(f'<rect x="{x0 + L}" y="{y0 + T}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
    for i in range(6):
        gx, gy = xmax * i / 5, ymax * i / 5
        out.append(f'<line x1="{px(gx)}" y1="{y0 + T}" x2="{px(gx)}" y2="{y0 + T + ph}" stroke="#eee"/>')
        out.append(f'<line x1="{x0 + L}" y1="{py(gy)}" x2="{x0 + L + pw}" y2="{py(gy)}" stroke="#eee"/>')
        out.append(f'<text x="{px(gx)}" y="{y0 + T + ph + 15}" text-anchor="middle">{gx:g}</text>')
        out.append(f'<text x="{x0 + L - 5}" y="{py(gy) + 4}" text-anchor="end">{gy:g}</text>')
    out.append(f'<text x="{x0 + L + pw / 2}" y="{y0 + H - 8}" text-anchor="middle">{xlabel}</text>')
    out.append(
        f'<text x="{x0 + 14}" y="{y0 + T + ph / 2}" text-anchor="middle" '
        f'transform="rotate(-90 {x0 + 14} {y0 + T + ph / 2})">{ylabel}</text>'
    )
    if hline:
        out.append(
            f'<line x1="{x0 + L}" y1="{py(hline)}" x2="{x0 + L + pw}" y2="{py(hline)}" '
            f'stroke="#555" stroke-dasharray="4 3"/>'
        )
    for i, (label, pts) in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        pts = sorted(pts)
        if pts:
            path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
            out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
            if len(pts) < 40:
                for x, y in pts:
                    out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}"/>')
        out.append(f'<rect x="{x0 + L + 8}" y="{y0 + T + 8 + 16 * i}" width="12" height="3" fill="{colour}"/>')
        out.append(f'<text x="{x0 + L + 24}" y="{y0 + T + 13 + 16 * i}">{label}</text>')
    return out


def write(path, panels, columns):
    rows = (len(panels) + columns - 1) // columns
    width, height = W * columns, H * rows
    body = []
    for i, p in enumerate(panels):
        body += panel(W * (i % columns), H * (i // columns), *p[:4], **(p[4] if len(p) > 4 else {}))
    with open(path, "w") as f:
        f.write(
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'font-family="sans-serif" font-size="11"><rect width="100%" height="100%" fill="white"/>\n'
        )
        f.write("\n".join(body))
        f.write("\n</svg>\n")


def num(v):
    try:
        return float(v)
    except ValueError:
        return None


def saturate(src, dst):
    by = defaultdict(list)
    for row in csv.DictReader(open(src)):
        by[(int(row["frame_size"]), row["relay"])].append(row)
    panels = []
    for size in sorted({s for s, _ in by}):
        delivered, p99 = [], []
        for (s, relay), rows in sorted(by.items()):
            if s != size:
                continue
            delivered.append((relay, [(num(r["offered_gbps"]), num(r["delivered_gbps"]) or 0) for r in rows]))
            p99.append((relay, [(num(r["offered_gbps"]), num(r["p99_ms"])) for r in rows if num(r["p99_ms"]) is not None]))
        name = f"{size / 1000:.0f} KB frames"
        panels.append((f"Delivered, {name}", "offered Gbit/s", "delivered Gbit/s", delivered))
        panels.append(
            (f"p99 latency, {name}", "offered Gbit/s", "p99 ms (dashed: bound; clipped at 1 s)", p99,
             {"hline": 200, "ycap": 1000})
        )
    write(dst, panels, 2)


def sessions(src, dst):
    by = defaultdict(list)
    for row in csv.DictReader(open(src)):
        by[row["relay"]].append((num(row["sessions"]), num(row["rss_kib"]) / 1024))
    write(dst, [("Relay memory against sessions", "sessions", "RSS MiB", sorted(by.items()))], 1)


def join(src, dst):
    by = defaultdict(list)
    for row in csv.DictReader(open(src)):
        label = f'{row["relay"]}, {row["transport"]}, {row["resumption"]}'
        by[(row["path"], label)].append(num(row["join_ms"]))
    panels = []
    for path in sorted({p for p, _ in by}):
        series = []
        for (p, label), samples in sorted(by.items()):
            if p != path:
                continue
            samples.sort()
            n = len(samples)
            series.append((label, [(v, 100 * (i + 1) / n) for i, v in enumerate(samples)]))
        # The axis ends a little past the slowest series' 99th percentile: a rare multi-second
        # join would squash the rest (the tail is drawn at the edge).
        p99s = [pts[int(0.99 * (len(pts) - 1))][0] for _, pts in series if pts]
        cap = 1.25 * max(p99s) if p99s else None
        panels.append((f"Join time, {path}", "ms to the first frame (tail clipped)", "% of joins", series, {"xcap": cap}))
    write(dst, panels, 2)


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("saturate", "sessions", "join"):
        sys.exit(__doc__)
    {"saturate": saturate, "sessions": sessions, "join": join}[sys.argv[1]](sys.argv[2], sys.argv[3])
