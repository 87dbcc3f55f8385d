"""A `ReportDocument` → files: an HTML page (charts inline as SVG, no external assets), one CSV per
table, and a PDF (matplotlib's PDF backend: a summary page, then the charts and tables).

matplotlib replaces a hand-written SVG/PDF writer; the Agg-free "svg"/"pdf" backends need no display.
"""

from __future__ import annotations

import csv
import html
import io
from pathlib import Path

import matplotlib

matplotlib.use("pdf")  # no display; figures are saved, never shown

import matplotlib.pyplot as plt
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from reports.document import Chart, ReportDocument

FORMATS = ("html", "csv", "pdf")


def chart_figure(chart: Chart) -> Figure:
    figure = plt.figure(figsize=(10, 3.6))
    axes = figure.add_subplot()
    positions = range(len(chart.x))
    bottom = [0.0] * len(chart.x)
    width = 0.8 / max(1, len(chart.series)) if chart.style == "bars" else 0.8
    for index, (name, values) in enumerate(chart.series.items()):
        numbers = [float("nan") if v is None else float(v) for v in values]
        if chart.style == "lines":
            axes.plot(list(positions), numbers, marker="o", markersize=3, label=name)
        elif chart.style == "stacked":
            axes.bar(list(positions), numbers, 0.8, bottom=bottom, label=name)
            bottom = [b + (0.0 if n != n else n) for b, n in zip(bottom, numbers, strict=True)]
        else:
            axes.bar([p + index * width for p in positions], numbers, width, label=name)
    axes.set_xticks(list(positions), chart.x, fontsize=7, rotation=45 if len(chart.x) > 12 else 0)
    axes.set_ylabel(chart.y_label)
    axes.set_title(chart.title)
    if chart.series:
        axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def _svg(figure: Figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def to_html(doc: ReportDocument, figures: list[Figure]) -> str:
    """The page, with `figures` (the doc's charts drawn by chart_figure) inline as SVG."""
    e = html.escape
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{e(doc.title)} — "
             f"{e(doc.site_name)}</title><style>body{{font-family:sans-serif;max-width:1100px;margin:auto}}"
             f"table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #ccc;padding:2px 6px}}"
             f".note{{color:#8a4b00}}</style></head><body>",
             f"<h1>{e(doc.title)}</h1><p>{e(doc.site_name)} ({e(doc.site_id)}), {e(doc.month)}, times in "
             f"{e(doc.timezone)}</p><dl>"]
    parts += [f"<dt><b>{e(k)}</b></dt><dd>{e(v)}</dd>" for k, v in doc.summary]
    parts.append("</dl>")
    if doc.not_judged:
        parts.append("<h2>What could not be judged</h2><ul>")
        parts += [f"<li class='note'>{e(n)}</li>" for n in doc.not_judged]
        parts.append("</ul>")
    parts += [f"<figure>{_svg(figure)}</figure>" for figure in figures]
    for table in doc.tables:
        parts.append(f"<h2>{e(table.title)}</h2><table><tr>{''.join(f'<th>{e(c)}</th>' for c in table.columns)}</tr>")
        parts += ["<tr>" + "".join(f"<td>{e('' if v is None else str(v))}</td>" for v in row) + "</tr>"
                  for row in table.rows]
        parts.append("</table>")
    parts.append("</body></html>")
    return "".join(parts)


def _text_page(doc: ReportDocument) -> Figure:
    figure = plt.figure(figsize=(8.27, 11.69))
    lines = [doc.title, f"{doc.site_name} ({doc.site_id}), {doc.month}, times in {doc.timezone}", ""]
    lines += [f"{k}: {v}" for k, v in doc.summary]
    if doc.not_judged:
        lines += ["", "What could not be judged:"] + [f"  - {n}" for n in doc.not_judged]
    figure.text(0.05, 0.97, "\n".join(_wrap(line) for line in lines), va="top", fontsize=8, family="DejaVu Sans")
    return figure


def _wrap(line: str, width: int = 110) -> str:
    out, rest = [], line
    while len(rest) > width:
        cut = rest.rfind(" ", 0, width)
        cut = width if cut <= 0 else cut
        out.append(rest[:cut])
        rest = "    " + rest[cut:].lstrip()
    return "\n".join([*out, rest])


def write_pdf(doc: ReportDocument, path: Path, figures: list[Figure]) -> None:
    """A summary page, then `figures` (the doc's charts drawn by chart_figure)."""
    with PdfPages(path) as pdf:
        page = _text_page(doc)
        pdf.savefig(page)
        plt.close(page)
        for figure in figures:
            pdf.savefig(figure)


def write_csv(doc: ReportDocument, directory: Path, stem: str) -> list[Path]:
    written = []
    for table in doc.tables:
        path = directory / f"{stem}-{table.name}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(table.columns)
            writer.writerows(["" if v is None else v for v in row] for row in table.rows)
        written.append(path)
    return written


def write_report(doc: ReportDocument, directory: Path, formats: tuple[str, ...] = FORMATS) -> list[Path]:
    """Write `doc` into `directory` as `<site>-<kind>-<month>.<ext>` (CSV: one file per table)."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"{doc.site_id}-{doc.kind}-{doc.month}"
    written: list[Path] = []
    # Each chart is drawn once for the page and the PDF: drawing is most of a report's rendering time.
    figures = [chart_figure(chart) for chart in doc.charts] if {"html", "pdf"} & set(formats) else []
    try:
        if "html" in formats:
            path = directory / f"{stem}.html"
            path.write_text(to_html(doc, figures), encoding="utf-8")
            written.append(path)
        if "csv" in formats:
            written += write_csv(doc, directory, stem)
        if "pdf" in formats:
            path = directory / f"{stem}.pdf"
            write_pdf(doc, path, figures)
            written.append(path)
    finally:
        for figure in figures:
            plt.close(figure)
    return written
