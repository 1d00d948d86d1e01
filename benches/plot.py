#!/usr/bin/env python3
"""The benchmarks' results as a Markdown table (stdout) and an SVG bar chart of the ratios.

    plot.py RESULTS.tsv --svg book/src/performance.svg

RESULTS.tsv is what the benches append (benches/lib.sh `record`, interleave.py --record),
one line per comparison, tab-separated:

    SECTION  BENCHMARK  KEEL  PEER  PEER_VALUE  UNIT  GOAL

The ratio is KEEL / PEER_VALUE: below 1.0 keel took less time (or memory) than its peer.
GOAL, when given, is checked: `ratio<=X` (optionally `ratio<=X vs PEER`, then only for that
peer) or `keel<X` (keel's own value, in UNIT). Rows in UNIT `count` (failures) are in the
table only: a ratio of counts says nothing.

Standard library only, so that the book's plot is made offline, on any machine.
"""

from __future__ import annotations

import argparse
import html
import re
import sys

GOAL = re.compile(r"^(ratio|keel)\s*(<=|<)\s*([0-9.]+)(?:\s+vs\s+(.+))?$")


def load(path: str) -> list[dict]:
    rows = []
    for n, line in enumerate(open(path, encoding="utf-8"), 1):
        if not line.strip():
            continue
        fields = line.rstrip("\n").split("\t")
        if len(fields) < 6:
            sys.exit(f"{path}:{n}: expected 6 or 7 tab-separated fields, got {len(fields)}: {line!r}")
        section, bench, keel, peer, peer_value, unit, *rest = fields
        keel_f, peer_f = float(keel), float(peer_value)
        ratio = keel_f / peer_f if peer_f else None
        rows.append({"section": section, "bench": bench, "keel": keel_f, "peer": peer, "peer_value": peer_f,
                     "unit": unit, "ratio": ratio, "goal": rest[0] if rest else ""})
    return rows


def goal_check(row: dict) -> str:
    """The goal as shown in the table, with whether it was met."""
    goal = row["goal"].strip()
    if not goal:
        return ""
    m = GOAL.match(goal)
    if not m:
        return html.escape(goal)
    what, op, limit, peer = m.group(1), m.group(2), float(m.group(3)), m.group(4)
    if peer and peer != row["peer"]:
        return ""
    value = row["ratio"] if what == "ratio" else row["keel"]
    shown = f"≤ {limit:g}×" if what == "ratio" else f"{op.replace('<=', '≤')} {limit:g} {'' if row['unit'] == 'count' else row['unit']}".rstrip()
    if value is None:
        return shown
    met = value <= limit if op == "<=" else value < limit
    return f"{shown} {'✅' if met else '❌ not met'}"


def number(value: float, unit: str) -> str:
    if unit == "count":
        return f"{value:g}"
    if unit == "ms":
        return f"{value:.1f} ms"
    return f"{value:.2f} {unit}"


def markdown(rows: list[dict]) -> str:
    lines = ["| benchmark | keel | peer | peer's | keel / peer | goal |", "|---|---:|---|---:|---:|---|"]
    for r in rows:
        ratio = "–" if r["ratio"] is None else f"**{r['ratio']:.2f}**"
        lines.append(
            f"| {r['bench']} | {number(r['keel'], r['unit'])} | {r['peer']} | {number(r['peer_value'], r['unit'])} "
            f"| {ratio} | {goal_check(r)} |"
        )
    return "\n".join(lines)


def svg(rows: list[dict]) -> str:
    rows = [r for r in rows if r["ratio"] is not None and r["unit"] != "count"]
    label_w, bar_w, row_h, top, pad = 440, 420, 26, 58, 12
    # The axis stops at 2.5: one far-off ratio must not squash the others into slivers; a bar
    # beyond it ends in a zigzag, with its value written.
    cap = 2.5
    top_ratio = min(cap, max([1.2] + [r["ratio"] * 1.08 for r in rows]))
    width, height = label_w + bar_w + 150, top + row_h * len(rows) + 40
    x = lambda ratio: label_w + bar_w * ratio / top_ratio  # noqa: E731
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'font-family="sans-serif" font-size="13">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{pad}" y="22" font-size="16" font-weight="bold">keel / peer: median time (or memory), '
        "lower is better</text>",
        f'<text x="{pad}" y="42" fill="#555">below the 1.0 line keel is the faster (or smaller); '
        "written by benches/plot.py from benches/all.sh's run</text>",
    ]
    section = None
    for i, r in enumerate(rows):
        y = top + i * row_h
        if r["section"] != section and i:
            out.append(f'<line x1="{pad}" x2="{width - pad}" y1="{y}" y2="{y}" stroke="#ddd"/>')
        section = r["section"]
        label = f"{r['bench']} vs {r['peer']}"
        if len(label) > 62:
            label = label[:60] + "…"
        colour = "#2e7d32" if r["ratio"] <= 1 else "#c62828"
        out.append(f'<text x="{label_w - 8}" y="{y + 17}" text-anchor="end">{html.escape(label)}</text>')
        end = x(min(r["ratio"], top_ratio))
        out.append(f'<rect x="{label_w}" y="{y + 5}" width="{end - label_w:.1f}" height="{row_h - 10}" '
                   f'fill="{colour}"/>')
        if r["ratio"] > top_ratio:
            out.append(f'<polyline points="{end - 14:.1f},{y + 3} {end - 8:.1f},{y + 13} {end - 14:.1f},{y + row_h - 3}" '
                       'fill="none" stroke="white" stroke-width="3"/>')
        out.append(f'<text x="{end + 5:.1f}" y="{y + 17}">{r["ratio"]:.2f}'
                   f'{" (off the scale)" if r["ratio"] > top_ratio else ""}</text>')
    bottom = top + row_h * len(rows)
    one = x(1.0)
    out.append(f'<line x1="{one:.1f}" x2="{one:.1f}" y1="{top - 4}" y2="{bottom + 4}" stroke="black" '
               'stroke-dasharray="4 3"/>')
    out.append(f'<text x="{one:.1f}" y="{bottom + 20}" text-anchor="middle">1.0 (as fast as the peer)</text>')
    out.append(f'<line x1="{label_w}" x2="{label_w}" y1="{top - 4}" y2="{bottom + 4}" stroke="#888"/>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results")
    parser.add_argument("--svg", help="write the bar chart here")
    args = parser.parse_args()
    rows = load(args.results)
    if not rows:
        sys.exit(f"{args.results}: no results (did the benchmarks run?)")
    print(markdown(rows))
    if args.svg:
        with open(args.svg, "w", encoding="utf-8") as f:
            f.write(svg(rows))


if __name__ == "__main__":
    main()
