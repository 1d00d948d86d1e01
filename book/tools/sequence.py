#!/usr/bin/env python3
"""Draws a sequence diagram as SVG from a small text file (book/diagrams/*.seq).

The format, one statement a line (`#` starts a comment):

    title: The pull conversation
    participant client: step06-images pull
    participant registry: registry
    client -> registry: GET /v2/NAME/manifests/TAG
    registry -> client: 200, a manifest
    client: a note beside client's lifeline (\\n breaks the line)
    ---: a divider across every lifeline, with a caption

Time goes down. `A -> B: text` is a message (an arrow from A to B with the text above it),
`A --> B: text` the same drawn dashed (an answer). The output depends only on the input, so
regenerating an unchanged source gives the same bytes.

Usage: sequence.py SOURCE.seq > OUT.svg
"""

from __future__ import annotations

import sys
from html import escape

FONT = "DejaVu Sans, Verdana, sans-serif"
SIZE = 13  # px: the message text
CHAR = 0.58 * SIZE  # an average character's width, enough for DejaVu Sans
LINE = 17  # px between the lines of a note
ROW = 38  # px: one message
MARGIN = 24
HEAD_H = 44
MIN_GAP = 150


def width(text: str) -> float:
    return max((len(line) for line in text.split("\n")), default=0) * CHAR


def parse(source: str):
    title = ""
    names: list[str] = []
    labels: dict[str, str] = {}
    steps: list[tuple] = []
    for number, raw in enumerate(source.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        head, sep, text = line.partition(":")
        text = text.strip().replace("\\n", "\n")
        if not sep:
            sys.exit(f"line {number}: expected `...: text`: {raw}")
        head = head.strip()
        if head == "title":
            title = text
        elif head.startswith("participant "):
            name = head.split()[1]
            names.append(name)
            labels[name] = text
        elif head == "---":
            steps.append(("divider", text))
        elif "->" in head:
            dashed = "-->" in head
            left, right = (part.strip() for part in head.replace("-->", "->").split("->"))
            for name in (left, right):
                if name not in labels:
                    sys.exit(f"line {number}: unknown participant {name!r}")
            steps.append(("message", left, right, text, dashed))
        elif head in labels:
            steps.append(("note", head, text))
        else:
            sys.exit(f"line {number}: not understood: {raw}")
    return title, names, labels, steps


def layout(names, labels, steps) -> list[float]:
    """The x of each lifeline: far enough apart for every message and note between them."""
    index = {name: i for i, name in enumerate(names)}
    gaps = [float(MIN_GAP)] * max(len(names) - 1, 0)
    for i in range(len(gaps)):
        need = (width(labels[names[i]]) + width(labels[names[i + 1]])) / 2 + 40
        gaps[i] = max(gaps[i], need)
    needs = []
    for step in steps:
        if step[0] == "message":
            a, b = sorted((index[step[1]], index[step[2]]))
            if a != b:
                needs.append((a, b, width(step[3]) + 30))
        elif step[0] == "note":
            a = index[step[1]]
            if a < len(gaps):
                needs.append((a, a + 1, width(step[2]) + 30))
    for a, b, need in sorted(needs, key=lambda n: n[1] - n[0]):
        have = sum(gaps[a:b])
        if have < need:
            for i in range(a, b):
                gaps[i] += (need - have) / (b - a)
    first = MARGIN + width(labels[names[0]]) / 2 + 12
    xs = [first]
    for gap in gaps:
        xs.append(xs[-1] + gap)
    return xs


def text_lines(x: float, y: float, text: str, anchor: str, extra: str = "") -> str:
    out = []
    for i, line in enumerate(text.split("\n")):
        out.append(
            f'<text x="{x:.1f}" y="{y + i * LINE:.1f}" text-anchor="{anchor}"{extra}>{escape(line)}</text>'
        )
    return "\n".join(out)


def render(source: str) -> str:
    title, names, labels, steps = parse(source)
    index = {name: i for i, name in enumerate(names)}
    xs = layout(names, labels, steps)
    body: list[str] = []
    y = MARGIN + (30 if title else 0)
    top = y
    # The participants' boxes.
    for name, x in zip(names, xs):
        w = width(labels[name]) + 24
        body.append(
            f'<rect x="{x - w / 2:.1f}" y="{y}" width="{w:.1f}" height="{HEAD_H - 12}" rx="6" '
            f'fill="#eef3fb" stroke="#4a6fa5"/>'
        )
        body.append(text_lines(x, y + 21, labels[name], "middle", ' font-weight="bold"'))
    y += HEAD_H
    right = xs[-1] + width(labels[names[-1]]) / 2 + 12
    rows: list[str] = []
    for step in steps:
        if step[0] == "message":
            _, a, b, text, dashed = step
            xa, xb = xs[index[a]], xs[index[b]]
            lines = text.count("\n") + 1
            y += ROW + (lines - 1) * LINE
            dash = ' stroke-dasharray="6 4"' if dashed else ""
            end = xb - 8 if xb > xa else xb + 8
            rows.append(f'<line x1="{xa:.1f}" y1="{y}" x2="{end:.1f}" y2="{y}" stroke="#333333" stroke-width="1.4"{dash}/>')
            tip = 1 if xb > xa else -1
            rows.append(
                f'<polygon points="{xb:.1f},{y} {xb - tip * 10:.1f},{y - 5} {xb - tip * 10:.1f},{y + 5}" fill="#333333"/>'
            )
            rows.append(text_lines((xa + xb) / 2, y - 7 - (lines - 1) * LINE, text, "middle"))
        elif step[0] == "note":
            _, at, text = step
            x = xs[index[at]]
            lines = text.count("\n") + 1
            h = lines * LINE + 10
            w = width(text) + 16
            y += 14
            rows.append(
                f'<rect x="{x + 8:.1f}" y="{y}" width="{w:.1f}" height="{h}" fill="#fff9d6" stroke="#c9b458"/>'
            )
            rows.append(text_lines(x + 16, y + 17, text, "start", ' font-size="12"'))
            y += h
            right = max(right, x + 8 + w + 4)
        else:  # divider
            y += 30
            rows.append(
                f'<line x1="{MARGIN}" y1="{y}" x2="{{RIGHT}}" y2="{y}" stroke="#b5772b" stroke-dasharray="2 3"/>'
            )
            rows.append(f'<text x="{MARGIN}" y="{y - 6}" font-size="12" fill="#b5772b">{escape(step[1])}</text>')
    y += 24
    right += MARGIN
    lifelines = [
        f'<line x1="{x:.1f}" y1="{top + HEAD_H - 12}" x2="{x:.1f}" y2="{y}" stroke="#9aaccc" stroke-dasharray="4 4"/>'
        for x in xs
    ]
    height = y + MARGIN
    heading = (
        f'<text x="{MARGIN}" y="{MARGIN + 16}" font-size="16" font-weight="bold">{escape(title)}</text>'
        if title
        else ""
    )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{right:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {right:.0f} {height:.0f}" font-family="{FONT}" font-size="{SIZE}">',
        f'<rect width="100%" height="100%" fill="white"/>',
        heading,
        *lifelines,
        *body,
        *(row.replace("{RIGHT}", f"{right - MARGIN:.0f}") for row in rows),
        "</svg>",
    ]
    return "\n".join(p for p in parts if p) + "\n"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: sequence.py SOURCE.seq > OUT.svg")
    with open(sys.argv[1], encoding="utf-8") as source:
        sys.stdout.write(render(source.read()))
