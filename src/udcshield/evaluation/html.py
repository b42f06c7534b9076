"""Self-contained HTML building blocks for the report: one file, inline CSS, images as base64 PNG data URIs.

Standard library only (``html.escape``, string building). Every text that reaches the page is escaped;
nothing in the page points outside it (no scripts, fonts, style sheets or images by URL), so the file can
be mailed, archived with the run, or opened offline.
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_ID = re.compile(r"^[a-z][a-z0-9-]*$")

#: A table cell: text or number (None shows as "-"), or (value, css class) to highlight it.
Cell = str | int | float | None | tuple[str | int | float | None, str]

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
header{background:#1d2a3a;color:#fff;padding:14px 28px}
header h1{margin:0 0 4px 0;font-size:22px}
header p{margin:2px 0;font-size:13px;color:#cfd8e3}
nav{background:#fff;border-bottom:1px solid #dde2e8;padding:6px 28px;font-size:13px;position:sticky;top:0}
nav a{margin-right:14px;color:#1f5fa8;text-decoration:none}
main{padding:8px 28px 24px 28px}
section{background:#fff;border:1px solid #dde2e8;border-radius:6px;margin:14px 0;padding:10px 18px}
h2{font-size:18px;margin:6px 0 8px 0}
h3{font-size:15px;margin:12px 0 6px 0}
p.note{font-size:13px;color:#4a5566;max-width:1100px}
.warn{background:#fff4e0;border-left:4px solid #e08a00;padding:6px 10px;font-size:13px}
table{border-collapse:collapse;font-size:12.5px;margin:6px 0 10px 0}
caption{text-align:left;font-weight:600;padding:4px 0;font-size:13px}
th,td{border:1px solid #dde2e8;padding:3px 8px;text-align:right;white-space:nowrap}
th{background:#eef1f5}
td.l,th.l{text-align:left}
td.bad{background:#fde2e1;color:#9b1c1c;font-weight:600}
td.good{background:#e3f5e6}
td.fail{background:#9b1c1c;color:#fff;font-weight:700}
figure{display:inline-block;margin:6px 14px 6px 0;vertical-align:top}
figure img{max-width:100%;border:1px solid #e3e7ec;image-rendering:pixelated}
figcaption{font-size:12px;color:#4a5566;max-width:900px}
.row{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
footer{font-size:12px;color:#4a5566;padding:4px 28px 24px 28px}
footer code,td code{font-size:11.5px}
"""


def data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for PNG bytes; anything that is not a PNG is refused."""
    if not isinstance(png, (bytes, bytearray)) or not png.startswith(PNG_SIGNATURE):
        raise ValueError("embedded images must be PNG bytes (missing PNG signature)")
    return "data:image/png;base64," + base64.b64encode(bytes(png)).decode("ascii")


def esc(text: object) -> str:
    """Escape any value for HTML text or attribute context."""
    return html.escape(str(text), quote=True)


def figure(png: bytes, alt: str, caption: str = "", width: int | None = None) -> str:
    """An embedded PNG with alt text and an optional caption (``width`` in CSS px caps the display size)."""
    if not alt:
        raise ValueError("every image needs alt text")
    size = f' style="width:{int(width)}px"' if width else ""
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{data_uri(png)}" alt="{esc(alt)}"{size}>{cap}</figure>'


def _cell(cell: Cell, tag: str, left: bool) -> str:
    cls = []
    if isinstance(cell, tuple):
        cell, extra = cell
        cls.append(extra)
    if left:
        cls.append("l")
    if cell is None or (isinstance(cell, float) and not math.isfinite(cell)):
        text = "-"
    elif isinstance(cell, float):
        text = f"{cell:.2f}"
    else:
        text = str(cell)
    attr = f' class="{esc(" ".join(cls))}"' if cls else ""
    return f"<{tag}{attr}>{esc(text)}</{tag}>"


def table(header: Sequence[str], rows: Sequence[Sequence[Cell]], caption: str = "", left_columns: int = 1,
          table_id: str = "") -> str:
    """An HTML table; the first ``left_columns`` columns are left-aligned labels, floats show 2 decimals.

    Every row must have ``len(header)`` cells.
    """
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(f"table {caption or table_id!r}: row {i} has {len(row)} cells, header has {len(header)}")
    ident = f' id="{esc(table_id)}"' if table_id else ""
    head = "".join(_cell(h, "th", k < left_columns) for k, h in enumerate(header))
    body = "".join("<tr>" + "".join(_cell(c, "td", k < left_columns) for k, c in enumerate(row)) + "</tr>"
                   for row in rows)
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f"<table{ident}>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def paragraph(text: str, cls: str = "note") -> str:
    """An escaped paragraph."""
    return f'<p class="{esc(cls)}">{esc(text)}</p>'


@dataclass(frozen=True)
class Section:
    """A titled part of the page; ``body`` is already-built HTML (from the helpers above)."""

    ident: str
    title: str
    body: str

    def __post_init__(self) -> None:
        if not _ID.match(self.ident):
            raise ValueError(f"section id {self.ident!r} must be lowercase letters, digits and dashes")


def page(title: str, subtitle: Sequence[str], sections: Sequence[Section], footer: str) -> str:
    """The whole document: header (title, subtitle lines), a navigation bar, the sections, the footer HTML."""
    ids = [s.ident for s in sections]
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate section ids: {ids}")
    nav = "".join(f'<a href="#{s.ident}">{esc(s.title)}</a>' for s in sections) + '<a href="#provenance">Provenance</a>'
    if "provenance" in ids:
        raise ValueError("section id 'provenance' is reserved for the footer")
    body = "".join(f'<section id="{s.ident}"><h2>{esc(s.title)}</h2>{s.body}</section>' for s in sections)
    sub = "".join(f"<p>{esc(line)}</p>" for line in subtitle)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{esc(title)}</title>"
            f"<style>{STYLE}</style></head><body><header><h1>{esc(title)}</h1>{sub}</header>"
            f"<nav>{nav}</nav><main>{body}</main><footer id=\"provenance\">{footer}</footer></body></html>\n")
