"""Markdown, LaTeX and self-contained HTML renderings of a report document.

The HTML page needs nothing outside itself: CSS and the table-sorting script are inline and every figure is
a ``data:image/png;base64`` URI, so it works offline and can be mailed as one file. After loading it sets
``data-images-loaded`` / ``data-table-rows`` on ``<body>`` (how many figures decoded, how many table rows
exist), which the browser test reads."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Sequence

from feat2gs.io.tables import markdown_table

from .document import Block, Figure, Heading, Paragraph, Table


# --------------------------------------------------------------------------------------------- markdown
def markdown(blocks: Sequence[Block], figure_dir: str = "plots") -> str:
    out = []
    for b in blocks:
        if isinstance(b, Heading):
            out += ["#" * b.level + " " + b.text, ""]
        elif isinstance(b, Paragraph):
            out += [b.text, ""]
        elif isinstance(b, Table):
            out.append(markdown_table(b.headers, b.rows))
            out += ([""] + [b.caption] if b.caption else []) + [""]
        elif isinstance(b, Figure):
            out += [f"![{b.caption}]({figure_dir}/{b.name})", ""]
    return "\n".join(out).rstrip() + "\n"


# ------------------------------------------------------------------------------------------------ latex
_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "↑": r"$\uparrow$",
        "↓": r"$\downarrow$", "±": r"$\pm$", "−": r"$-$", "–": "--", "τ": r"$\tau$", "ρ": r"$\rho$", "·": r"$\cdot$"}


def tex(s: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in s)


def latex(blocks: Sequence[Block], figure_dir: str = "plots") -> str:
    out = [r"\documentclass{article}", r"\usepackage[margin=2cm]{geometry}", r"\usepackage{booktabs}",
           r"\usepackage{graphicx}", r"\usepackage[utf8]{inputenc}", r"\begin{document}"]
    for b in blocks:
        if isinstance(b, Heading):
            if b.level == 1:
                out += [r"\section*{" + tex(b.text) + "}"]
            else:
                out += ["\\" + "sub" * (b.level - 1) + "section*{" + tex(b.text) + "}"]
        elif isinstance(b, Paragraph):
            out += [tex(b.text), ""]
        elif isinstance(b, Table):
            out += [r"\begin{table}[h]", r"\centering", r"\small",
                    r"\resizebox{\linewidth}{!}{%" if len(b.headers) > 8 else "",
                    r"\begin{tabular}{" + "l" * len(b.headers) + "}", r"\toprule",
                    " & ".join(tex(h) for h in b.headers) + r" \\", r"\midrule"]
            out += [" & ".join(tex(c) for c in r) + r" \\" for r in b.rows]
            out += [r"\bottomrule", r"\end{tabular}" + ("}" if len(b.headers) > 8 else "")]
            if b.caption:
                out.append(r"\caption{" + tex(b.caption) + "}")
            out += [r"\end{table}", ""]
        elif isinstance(b, Figure):
            out += [r"\begin{figure}[h]", r"\centering",
                    r"\includegraphics[width=0.8\linewidth]{" + f"{figure_dir}/{b.name}" + "}",
                    r"\caption{" + tex(b.caption) + "}", r"\end{figure}", ""]
    out += [r"\end{document}"]
    return "\n".join(line for line in out if line != "") + "\n"


# ------------------------------------------------------------------------------------------------- html
_CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; color: #222; line-height: 1.4; padding: 0 1em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.88em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f0f0f0; cursor: pointer; user-select: none; white-space: nowrap; }
th.asc::after { content: " \\25B2"; } th.desc::after { content: " \\25BC"; }
tr:nth-child(even) td { background: #fafafa; }
td.better { color: #15671e; } td.worse { color: #9b1c1c; } td.tie { color: #666; }
.caption { color: #555; font-size: 0.85em; margin-top: -0.4em; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.85em; }
nav a { margin-right: 1em; }
"""

_JS = """
function sortTable(th) {
  var table = th.closest('table'), idx = Array.prototype.indexOf.call(th.parentNode.children, th);
  var asc = !th.classList.contains('asc');
  Array.prototype.forEach.call(th.parentNode.children, function (h) { h.classList.remove('asc', 'desc'); });
  th.classList.add(asc ? 'asc' : 'desc');
  var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
  rows.sort(function (a, b) {
    var x = a.cells[idx], y = b.cells[idx];
    var kx = x.getAttribute('data-sort'), ky = y.getAttribute('data-sort');
    var r;
    if (kx !== null && ky !== null) { r = parseFloat(kx) - parseFloat(ky); }
    else if (kx !== null) { r = -1; } else if (ky !== null) { r = 1; }
    else { r = x.textContent.localeCompare(y.textContent, undefined, {numeric: true}); }
    return asc ? r : -r;
  });
  rows.forEach(function (r) { body.appendChild(r); });
}
document.addEventListener('DOMContentLoaded', function () {
  document.querySelectorAll('table.sortable th').forEach(function (th) {
    th.addEventListener('click', function () { sortTable(th); });
  });
});
window.addEventListener('load', function () {
  var imgs = document.querySelectorAll('figure img'), ok = 0;
  imgs.forEach(function (im) { if (im.complete && im.naturalWidth > 0) { ok += 1; } });
  document.body.setAttribute('data-images-loaded', ok);
  document.body.setAttribute('data-images-total', imgs.length);
  document.body.setAttribute('data-table-rows', document.querySelectorAll('table.sortable tbody tr').length);
});
"""


def html_page(blocks: Sequence[Block]) -> str:
    e = html.escape
    title = next((b.text for b in blocks if isinstance(b, Heading) and b.level == 1), "feat2gs report")
    nav = [f'<a href="#{b.anchor}">{e(b.text)}</a>' for b in blocks if isinstance(b, Heading) and b.anchor]
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">', f"<title>{e(title)}</title>",
           f"<style>{_CSS}</style>", f"<script>{_JS}</script>", "</head><body>"]
    first_heading = True
    for b in blocks:
        if isinstance(b, Heading):
            anchor = f' id="{e(b.anchor)}"' if b.anchor else ""
            out.append(f"<h{b.level}{anchor}>{e(b.text)}</h{b.level}>")
            if first_heading and nav:
                out.append("<nav>" + "".join(nav) + "</nav>")
            first_heading = False
        elif isinstance(b, Paragraph):
            out.append(f"<p>{e(b.text)}</p>")
        elif isinstance(b, Table):
            out.append(f'<table class="sortable" id="{e(b.key)}"><thead><tr>'
                       + "".join(f"<th>{e(h)}</th>" for h in b.headers) + "</tr></thead><tbody>")
            for i, r in enumerate(b.rows):
                keys = b.sort[i] if i < len(b.sort) else []
                cells = []
                for j, c in enumerate(r):
                    k = keys[j] if j < len(keys) else None
                    attr = f' data-sort="{k!r}"' if k is not None else ""
                    verdict = c.split(" ", 1)[0]
                    cls = f' class="{verdict}"' if verdict in ("better", "worse", "tie") else ""
                    cells.append(f"<td{attr}{cls}>{e(c)}</td>")
                out.append("<tr>" + "".join(cells) + "</tr>")
            out.append("</tbody></table>")
            if b.caption:
                out.append(f'<p class="caption">{e(b.caption)}</p>')
        elif isinstance(b, Figure):
            data = base64.b64encode(b.png).decode()
            out.append(f'<figure><img alt="{e(b.caption)}" src="data:image/png;base64,{data}">'
                       f"<figcaption>{e(b.caption)}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_all(blocks: Sequence[Block], out: Path) -> list[Path]:
    out = Path(out)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    for b in blocks:
        if isinstance(b, Figure):
            (out / "plots" / b.name).write_bytes(b.png)
    paths = [out / "report.md", out / "report.tex", out / "report.html"]
    paths[0].write_text(markdown(blocks))
    paths[1].write_text(latex(blocks))
    paths[2].write_text(html_page(blocks))
    return paths
