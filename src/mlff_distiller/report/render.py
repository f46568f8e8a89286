"""One document, two renderings: Markdown and self-contained HTML.

A document is a list of blocks, each a tuple:
``("h1" | "h2" | "h3", text)``, ``("p", text)``, ``("list", [text, ...])``,
``("table", headers, rows)`` and ``("figure", path, caption)``. Markdown links figures by
relative path; HTML embeds them as base64 ``data:`` URIs, so the file stands alone.
"""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path

Block = tuple

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.8em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: left; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #555; font-size: 0.9em; }
"""


def fmt(value, digits: int = 3) -> str:
    """A number for a table: ``n/a`` for missing, thousands separators for integers,
    ``digits`` significant digits below 1000, whole numbers with separators above."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:  # nan
            return "n/a"
        if value == 0:
            return "0"
        return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def to_markdown(blocks: list[Block], base_dir: str | os.PathLike) -> str:
    """Markdown text; figure paths are written relative to ``base_dir``."""
    lines: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            lines += ["#" * int(kind[1]) + " " + block[1], ""]
        elif kind == "p":
            lines += [block[1], ""]
        elif kind == "list":
            lines += [f"- {item}" for item in block[1]] + [""]
        elif kind == "table":
            headers, rows = block[1], block[2]
            lines.append("| " + " | ".join(_md_cell(h) for h in headers) + " |")
            lines.append("|" + "|".join("---" for _ in headers) + "|")
            lines += ["| " + " | ".join(_md_cell(fmt(c)) for c in row) + " |" for row in rows]
            lines.append("")
        elif kind == "figure":
            rel = os.path.relpath(block[1], base_dir)
            lines += [f"![{block[2]}]({Path(rel).as_posix()})", "", f"*{block[2]}*", ""]
        else:
            raise ValueError(f"unknown block kind {kind!r}")
    return "\n".join(lines)


def to_html(blocks: list[Block], title: str) -> str:
    """A standalone HTML page with figures embedded as base64 PNG."""
    body: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            body.append(f"<{kind}>{html.escape(block[1])}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{html.escape(block[1])}</p>")
        elif kind == "list":
            items = "".join(f"<li>{html.escape(i)}</li>" for i in block[1])
            body.append(f"<ul>{items}</ul>")
        elif kind == "table":
            head = "".join(f"<th>{html.escape(str(h))}</th>" for h in block[1])
            rows = "".join(
                "<tr>" + "".join(_html_cell(c) for c in row) + "</tr>" for row in block[2])
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif kind == "figure":
            data = base64.b64encode(Path(block[1]).read_bytes()).decode("ascii")
            body.append(f'<figure><img alt="{html.escape(block[2])}" '
                        f'src="data:image/png;base64,{data}"><figcaption>'
                        f"{html.escape(block[2])}</figcaption></figure>")
        else:
            raise ValueError(f"unknown block kind {kind!r}")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _html_cell(value) -> str:
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    cls = ' class="num"' if numeric else ""
    return f"<td{cls}>{html.escape(fmt(value))}</td>"
