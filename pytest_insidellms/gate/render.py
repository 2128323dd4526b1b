"""The verdict as text (terminal), Markdown (gate.md, ``$GITHUB_STEP_SUMMARY``) and HTML
(report.html's comparison section), and the gate files. Each renderer reads one
:class:`~.engine.Verdict` and computes nothing of its own, so they all say the same thing.

Markdown is kept under ``limit`` bytes (UTF-8): GitHub refuses a step summary over 1 MiB per
step, and other steps may write to the same one, so the default is half of that. The rows
and the counts come first; the flipped, new, removed and flaky cases follow in ``<details>``
lists, cut with a "... and N more" line once the budget is spent (gate.json has them all).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Final

from ..records.canonical import pretty_json, write_atomic
from .engine import GateRow, Verdict

__all__ = ["GATE_JSON", "GATE_MARKDOWN", "MARKDOWN_LIMIT", "append_step_summary", "render_html",
           "render_markdown", "render_text", "write_gate_files"]

GATE_JSON: Final = "gate.json"
GATE_MARKDOWN: Final = "gate.md"
MARKDOWN_LIMIT: Final = 512 * 1024
#: Below this a Markdown report cannot hold its title, one row and the counts.
_SMALLEST_LIMIT: Final = 2048
#: Room kept for the case lists' summaries when the rows alone would fill the limit.
_LIST_RESERVE: Final = 5 * 120
#: Cases listed per list in report.html (the page stays small; gate.json has them all).
HTML_LIST_LIMIT: Final = 500

_HEADERS: Final = ("metric", "baseline", "now", "delta", "n", "{ci} CI", "p", "p (Holm)",
                   "MDE", "rule", "verdict")


def _number(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.4g}" if signed else f"{value:.4g}"


def _p(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _interval(row: GateRow) -> str:
    if row.low is None or row.high is None:
        return "-"
    return f"[{row.low:.3g}, {row.high:.3g}]"


def _cells(row: GateRow) -> tuple[str, ...]:
    return (row.metric, _number(row.baseline), _number(row.candidate),
            _number(row.delta, signed=True), "-" if row.n is None else str(row.n),
            _interval(row), _p(row.p_value), _p(row.adjusted_p), _p(row.mde), row.rule,
            row.verdict.upper() if row.verdict == "fail" else row.verdict)


def _headers(verdict: Verdict) -> tuple[str, ...]:
    ci = f"{verdict.confidence * 100:g}%"
    return tuple(header.format(ci=ci) for header in _HEADERS)


def _title(verdict: Verdict) -> str:
    state = "passed" if verdict.passed else "FAILED"
    if verdict.compared:
        against = f"against {verdict.baseline_label}" if verdict.baseline_label else \
            "against the baseline"
    else:
        against = f"without a baseline ({verdict.missing}): comparative rules skipped"
    mode = (f"alpha {verdict.alpha:g}, one-sided, Holm-adjusted" if verdict.alpha > 0
            else "alpha 0: raw point values")
    return f"regression gate {state} {against}; {mode}"


def _count_words(verdict: Verdict) -> list[str]:
    counts = verdict.counts()
    if not verdict.compared:
        return [f"{counts['flaky']} flaky"]
    return [f"{counts['common']} common", f"{counts['new']} new",
            f"{counts['removed']} removed", f"{counts['regressions']} pass->fail",
            f"{counts['improvements']} fail->pass", f"{counts['flaky']} flaky"]


def render_text(verdict: Verdict) -> str:
    """The terminal section: the title, one row per rule and metric, reasons, case counts."""
    lines = [_title(verdict)]
    if verdict.rows:
        table = [_headers(verdict), *(_cells(row) for row in verdict.rows)]
        widths = [max(len(cells[i]) for cells in table) for i in range(len(_HEADERS))]
        for number, cells in enumerate(table):
            lines.append("  ".join(cell.ljust(width) if i in (0, 9, 10) else cell.rjust(width)
                                   for i, (cell, width) in enumerate(zip(cells, widths)))
                         .rstrip())
            if number == 0:
                lines.append("  ".join("-" * width for width in widths))
        lines.extend(f"  {row.verdict}: {row.metric} ({row.rule}): {row.reason}"
                     for row in verdict.rows if row.verdict != "pass")
    else:
        lines.append("no gate rules: nothing judged")
    lines.append("cases: " + ", ".join(_count_words(verdict)))
    return "\n".join(lines) + "\n"


# --- Markdown --------------------------------------------------------------------------------

def _code(text: str) -> str:
    """An inline code span that holds any text, also inside a table cell."""
    flat = " ".join(text.split()).replace("|", "\\|")
    fence = "`" * (max((len(run) for run in re.findall(r"`+", flat)), default=0) + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def _markdown_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |\n"


def _case_lists(verdict: Verdict) -> list[tuple[str, tuple[str, ...]]]:
    cases = verdict.cases
    return [("pass -> fail", cases.regressions), ("fail -> pass", cases.improvements),
            ("new (not paired)", cases.new), ("removed (not paired)", cases.removed),
            ("flaky", cases.flaky)]


def render_markdown(verdict: Verdict, *, limit: int = MARKDOWN_LIMIT) -> str:
    """gate.md and the step summary; never more than ``limit`` bytes."""
    if limit < _SMALLEST_LIMIT:
        raise ValueError(f"limit must be at least {_SMALLEST_LIMIT} bytes, got {limit}")
    title = _title(verdict)
    head = f"### Regression gate: {'passed' if verdict.passed else 'FAILED'}\n\n" \
           f"{escape(title[0].upper() + title[1:], quote=False)}.\n\n"
    counts = "**Cases:** " + " · ".join(_count_words(verdict)) + "\n\n"
    if verdict.rows:
        table = _markdown_row(_headers(verdict)) + _markdown_row(["---"] * len(_HEADERS))
        reserve = _size(head) + _size(table) + _size(counts) + _LIST_RESERVE
        body: list[str] = []
        for index, row in enumerate(verdict.rows):
            cells = [_code(row.metric), *_cells(row)[1:9], _code(row.rule),
                     f"**{row.verdict}**" if row.verdict == "fail" else row.verdict]
            line = _markdown_row(cells)
            if reserve + _size(line) > limit:
                body.append(f"\n... and {len(verdict.rows) - index} more rows "
                            f"(gate.json has them all)\n")
                break
            reserve += _size(line)
            body.append(line)
        head += table + "".join(body) + "\n"
    else:
        head += "No gate rules: nothing judged.\n\n"
    text = head + counts
    lists = [(title_words, keys) for title_words, keys in _case_lists(verdict) if keys]
    # Every list keeps at least its summary and its "... and N more" line.
    later = sum(_size(_details(title_words, keys, 0)) for title_words, keys in lists)
    for title_words, keys in lists:
        later -= _size(_details(title_words, keys, 0))
        text += _details(title_words, keys, limit - _size(text) - later)
    return text


def _details(title: str, keys: Sequence[str], budget: int) -> str:
    """The list in ``budget`` bytes, or as its summary and a count when even that is short."""
    opening = f"<details><summary>{len(keys)} {escape(title)}</summary>\n\n"
    closing = "\n</details>\n\n"
    more = f"- ... and {len(keys)} more\n"
    room = budget - _size(opening) - _size(closing) - _size(more)
    lines: list[str] = []
    for key in keys:
        line = f"- {_code(key)}\n"
        if _size(line) > room:
            break
        room -= _size(line)
        lines.append(line)
    if len(lines) < len(keys):
        lines.append(f"- ... and {len(keys) - len(lines)} more\n")
    return opening + "".join(lines) + closing


# --- HTML ------------------------------------------------------------------------------------

def render_html(verdict: Verdict) -> str:
    """A fragment for report.html's comparison section; every text is escaped."""
    e = escape
    parts = [f'<div class="gate {"pass" if verdict.passed else "fail"}">',
             f"<p><strong>{e(_title(verdict))}</strong></p>"]
    if verdict.rows:
        parts.append("<table><thead><tr>" + "".join(f"<th>{e(h)}</th>"
                                                    for h in _headers(verdict))
                     + "</tr></thead><tbody>")
        parts.extend(_html_row(row) for row in verdict.rows)
        parts.append("</tbody></table>")
        parts.extend(f'<p class="muted">{e(row.verdict)}: <code>{e(row.metric)}</code> '
                     f"({e(row.rule)}): {e(row.reason)}</p>"
                     for row in verdict.rows if row.verdict != "pass")
    else:
        parts.append('<p class="empty">No gate rules: nothing judged.</p>')
    parts.append(f"<p>Cases: {e(', '.join(_count_words(verdict)))}</p>")
    for title, keys in _case_lists(verdict):
        if keys:
            shown = "".join(f"<li><code>{e(key)}</code></li>" for key in keys[:HTML_LIST_LIMIT])
            rest = len(keys) - HTML_LIST_LIMIT
            more = f"<li>... and {rest} more</li>" if rest > 0 else ""
            parts.append(f"<details><summary>{len(keys)} {e(title)}</summary>"
                         f'<ul class="flaky">{shown}{more}</ul></details>')
    parts.append("</div>")
    return "".join(parts)


def _html_row(row: GateRow) -> str:
    cells = _cells(row)
    metric, figures, rule, verdict = cells[0], cells[1:9], cells[9], cells[10]
    verdict_class = "bad" if row.verdict == "fail" else ""
    return ("<tr>" + f"<td><code>{escape(metric)}</code></td>"
            + "".join(f'<td class="num">{escape(cell)}</td>' for cell in figures)
            + f"<td><code>{escape(rule)}</code></td>"
            + f'<td class="{verdict_class}">{escape(verdict)}</td></tr>')


def write_gate_files(directory: Path, verdict: Verdict) -> tuple[Path, Path]:
    """gate.json (canonical, pretty) and gate.md in ``directory``, each written atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path, markdown_path = directory / GATE_JSON, directory / GATE_MARKDOWN
    write_atomic(json_path, pretty_json(verdict.to_json()).encode("utf-8"))
    write_atomic(markdown_path, render_markdown(verdict).encode("utf-8"))
    return json_path, markdown_path


def append_step_summary(verdict: Verdict) -> Path | None:
    """The Markdown appended to ``$GITHUB_STEP_SUMMARY`` (GitHub Actions' job summary) when
    that variable is set; the file written, or None."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    with open(target, "a", encoding="utf-8") as stream:
        stream.write(render_markdown(verdict) + "\n")
    return Path(target)
