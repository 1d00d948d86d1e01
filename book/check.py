#!/usr/bin/env python3
"""Checks the book's includes and links; run after `mdbook build book`.

For every Markdown file under book/src/:

- each `{{#include PATH}}` (and `{{#rustdoc_include PATH}}`) must name a file that exists,
  relative to the Markdown file. `PATH:NAME` needs both `ANCHOR: NAME` and `ANCHOR_END: NAME`
  in that file, in that order; `PATH:START:END` needs the file to have line START.
- each relative link or image, `[text](x.md)`, `[text](x.md#part)`, `![alt](x.png)` or
  `[ref]: x.md`, must name a file inside book/src that exists. When the book has been built
  (book/book/), a `#part` must also be an id in the rendered page.
- every page must be listed in SUMMARY.md, or mdBook does not render it.

Prints `book check: N includes, M links ok` and exits 0, or lists the problems and exits 1.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

BOOK = Path(__file__).resolve().parent
SRC = BOOK / "src"
BUILD = BOOK / "book"

# mdBook's link preprocessor: {{#include path}}, {{#include path:anchor}},
# {{#include path:start:end}}, with an optional backslash escape in front.
INCLUDE = re.compile(r"(\\?)\{\{#(include|rustdoc_include)\s+([^}\s]+)\s*\}\}")
FENCE = re.compile(r"^(\s*)(```+|~~~+)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
# [text](target) and ![alt](target), with an optional "title".
INLINE_LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s+<?(\S+?)>?(?:\s|$)")
HTML_ID = re.compile(r"""\bid\s*=\s*["']([^"']+)["']""")


def split_include_target(target: str) -> tuple[str, str | None, tuple[str, ...] | None]:
    """Returns (path, anchor, line_range) for the target of an include."""
    path, sep, rest = target.partition(":")
    if not sep:
        return path, None, None
    parts = tuple(rest.split(":"))
    if all(p == "" or p.isdigit() for p in parts):
        return path, None, parts
    return path, rest, None


def anchor_problem(file: Path, name: str) -> str | None:
    text = file.read_text(encoding="utf-8", errors="replace")
    start = re.search(rf"(?<![\w])ANCHOR:\s*{re.escape(name)}(?![\w])", text)
    end = re.search(rf"(?<![\w])ANCHOR_END:\s*{re.escape(name)}(?![\w])", text)
    if not start and not end:
        return f"anchor {name!r} not found (no `ANCHOR: {name}` / `ANCHOR_END: {name}`)"
    if not start:
        return f"anchor {name!r} has `ANCHOR_END: {name}` but no `ANCHOR: {name}`"
    if not end:
        return f"anchor {name!r} has `ANCHOR: {name}` but no `ANCHOR_END: {name}`"
    if end.start() < start.start():
        return f"anchor {name!r}: `ANCHOR_END` comes before `ANCHOR`"
    return None


def lines_problem(file: Path, parts: tuple[str, ...]) -> str | None:
    first = parts[0]
    if first == "":
        return None
    count = len(file.read_text(encoding="utf-8", errors="replace").splitlines())
    if int(first) > count:
        return f"starts at line {first} but the file has {count} lines"
    return None


def prose_lines(text: str):
    """Yields (line_number, line) outside fenced code blocks, with inline code removed."""
    fence = None
    for number, line in enumerate(text.splitlines(), start=1):
        match = FENCE.match(line)
        if match:
            marker = match.group(2)
            if fence is None:
                fence = marker[0] * len(marker)
            elif marker.startswith(fence):
                fence = None
            continue
        if fence is None:
            yield number, INLINE_CODE.sub("", line)


def html_ids(page: Path) -> set[str] | None:
    if not page.is_file():
        return None
    return set(HTML_ID.findall(page.read_text(encoding="utf-8", errors="replace")))


def main() -> int:
    problems: list[str] = []
    includes = links = 0
    pages = sorted(SRC.rglob("*.md"))
    built = BUILD.is_dir()
    if not pages:
        problems.append(f"{SRC}: no Markdown files")

    for page in pages:
        where = page.relative_to(BOOK)
        text = page.read_text(encoding="utf-8")

        for number, line in enumerate(text.splitlines(), start=1):
            for match in INCLUDE.finditer(line):
                if match.group(1):  # \{{#include ...}} is shown literally
                    continue
                includes += 1
                path, anchor, line_range = split_include_target(match.group(3))
                target = (page.parent / path).resolve()
                at = f"{where}:{number}: {{{{#{match.group(2)} {match.group(3)}}}}}"
                if not target.is_file():
                    problems.append(f"{at}: no such file {path}")
                    continue
                if anchor is not None:
                    problem = anchor_problem(target, anchor)
                    if problem:
                        problems.append(f"{at}: {problem}")
                elif line_range is not None:
                    problem = lines_problem(target, line_range)
                    if problem:
                        problems.append(f"{at}: {problem}")

        for number, line in prose_lines(text):
            targets = [m.group(1) for m in INLINE_LINK.finditer(line)]
            ref = REFERENCE_DEF.match(line)
            if ref:
                targets.append(ref.group(1))
            for raw in targets:
                if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", raw) or raw.startswith("//"):
                    continue  # https:, mailto:...: not checked offline
                links += 1
                at = f"{where}:{number}: ({raw})"
                path, _, fragment = raw.partition("#")
                target = (page.parent / path).resolve() if path else page
                try:
                    target.relative_to(SRC)
                except ValueError:
                    problems.append(f"{at}: points outside book/src, so not into the rendered book")
                    continue
                if not target.exists():
                    problems.append(f"{at}: no such file {path}")
                    continue
                if fragment and built and target.suffix == ".md":
                    rendered = BUILD / target.relative_to(SRC).with_suffix(".html")
                    ids = html_ids(rendered)
                    if ids is None:
                        problems.append(f"{at}: {rendered.relative_to(BOOK)} was not rendered")
                    elif fragment not in ids:
                        problems.append(f"{at}: no heading or id #{fragment} in {path or page.name}")

    summary = SRC / "SUMMARY.md"
    if summary.is_file():
        listed = {
            (SRC / m.group(1).partition("#")[0]).resolve()
            for _, line in prose_lines(summary.read_text(encoding="utf-8"))
            for m in INLINE_LINK.finditer(line)
        }
        for page in pages:
            if page != summary and page.resolve() not in listed:
                problems.append(f"{page.relative_to(BOOK)}: not listed in SUMMARY.md, so not rendered")
    else:
        problems.append("src/SUMMARY.md is missing")

    if problems:
        print(f"book check: {len(problems)} problem(s):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    note = "" if built else " (book/book not built: #fragments not checked)"
    print(f"book check: {includes} includes, {links} links ok{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
