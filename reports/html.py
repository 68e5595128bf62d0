"""A self-contained HTML page: the same tables as the Markdown report, with the figures inlined as SVG
(no external files, scripts or fonts; it can be mailed or attached to a paper draft as is)."""
from __future__ import annotations

import html
import re

from bench.reports.layout import Table
from bench.reports.tables import body, header

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 72rem;
       padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }
caption { caption-side: top; text-align: left; padding-bottom: 0.4rem; color: #444; }
th, td { padding: 0.25rem 0.6rem; border-bottom: 1px solid #ddd; text-align: right; white-space: nowrap; }
th:first-child, td:first-child, th:last-child, td:last-child { text-align: left; }
thead th { border-bottom: 2px solid #333; }
tr.reference td { color: #555; font-style: italic; }
.oracle { background: #fff3cd; border: 1px solid #e0c060; padding: 0.5rem 1rem; }
figure { display: inline-block; margin: 0.5rem 1rem 1rem 0; }
figure svg { max-width: 100%; height: auto; }
.wide { max-width: 100%; overflow-x: auto; }
"""


def _svg_inline(svg: str) -> str:
    """Drop the XML prolog and DOCTYPE, which are not allowed inside an HTML body."""
    svg = re.sub(r"^<\?xml[^>]*\?>\s*", "", svg)
    return re.sub(r"<!DOCTYPE[^>]*>\s*", "", svg)


def html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header(table))
    lines = ['<div class="wide"><table>', f"<caption>{html.escape(table.caption)}</caption>",
             f"<thead><tr>{head}</tr></thead>", "<tbody>"]
    bold = lambda t: f"\x00{t}\x01"
    for row, cells in zip(table.rows, body(table, bold)):
        tds = "".join("<td>" + html.escape(c).replace("\x00", "<strong>").replace("\x01", "</strong>") + "</td>"
                      for c in cells)
        lines.append(f'<tr class="{row.source}">{tds}</tr>')
    lines += ["</tbody>", "</table></div>"]
    return "\n".join(lines)


def to_html(tables: list[Table], intro: list[str], figures: dict, oracle: bool, paper: list | None = None) -> str:
    """`figures` maps (model, task) to [(title, svg text)]; `paper` (paper-shaped tables) replaces the
    per-task tables, each model's figures following its tables."""
    title = html.escape(intro[0])
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">', f"<title>{title}</title>",
           f"<style>{STYLE}</style>", "</head>", "<body>", f"<h1>{title}</h1>"]
    for line in intro[1:]:
        cls = ' class="oracle"' if oracle and "ORACLE" in line else ""
        out.append(f"<p{cls}>{html.escape(line.replace('**', ''))}</p>")
    if paper is not None:
        from bench.reports.paper_render import html_table as paper_table

        for model in dict.fromkeys(t.model for t in paper):
            out.append(f"<h2>Model: {html.escape(model)}</h2>")
            out += [paper_table(t) for t in paper if t.model == model]
            for t in tables:
                if t.model == model:
                    for fig_title, svg in figures.get((t.model, t.task), []):
                        out.append(f'<figure aria-label="{html.escape(fig_title)}">{_svg_inline(svg)}</figure>')
        out += ["</body>", "</html>"]
        return "\n".join(out) + "\n"
    model = None
    for table in tables:
        if table.model != model:
            model = table.model
            out.append(f"<h2>Model: {html.escape(model)}</h2>")
        out += [f"<h3>{html.escape(table.task)}</h3>", html_table(table)]
        for fig_title, svg in figures.get((table.model, table.task), []):
            out.append(f'<figure aria-label="{html.escape(fig_title)}">{_svg_inline(svg)}</figure>')
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"
