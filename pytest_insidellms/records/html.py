"""report.html: one self-contained page a person would rather read than the JSON.

Inline CSS and inline SVG only: no script, no font, no image, no URL of any kind, and a
Content-Security-Policy that forbids fetching anything should a comparison fragment try.
Every value from the records is escaped. The page is a pure function of the summary and the
records, so it is as byte-stable as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any, Final

from ..cases import OUTCOMES

MAX_FAILURES: Final = 200
_ERROR_LINES: Final = 30
_BAR_WIDTH: Final = 220
_BAR_HEIGHT: Final = 16

Record = Mapping[str, Any]


def render_report(summary: Mapping[str, Any], records: Sequence[Record], *,
                  title: str = "pytest-insidellms report",
                  comparison_html: str | None = None) -> str:
    """The page; ``comparison_html`` (trusted markup, e.g. the baseline gate's table) fills
    the comparison section, which otherwise says there is no baseline."""
    body = summary["summary"]
    parts = [
        _head(title),
        f'<header><h1>{_e(title)}</h1><p class="meta">run <code>'
        f'{_e(summary["config"].get("run_id") or "-")}</code> &middot; '
        f'{body["session"]["records"]} records &middot; {body["session"]["cases"]} cases</p>'
        "</header>",
        _outcomes(body["session"]),
        _experiments(body["experiments"]),
        _trials(body["experiments"]),
        _failures(records),
        _comparison(comparison_html),
        "</main></body></html>\n",
    ]
    return "\n".join(p for p in parts if p)


def _head(title: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{_CSS}</style></head><body><main>"""


def _outcomes(session: Mapping[str, Any]) -> str:
    counts: Mapping[str, int] = session["outcomes"]
    tiles = "".join(
        f'<div class="tile {o}{" zero" if not counts[o] else ""}"><span class="count">'
        f'{counts[o]}</span><span class="label">{o}</span></div>' for o in OUTCOMES)
    rate = session["pass_rate"]
    ci = session["pass_rate_ci"]
    shown = "no case ran" if rate is None else (
        f'{_percent(rate)} <span class="ci">[{_percent(ci["lower"])}, '
        f'{_percent(ci["upper"])}]</span> of {session["ran"]} cases that ran')
    return (f'<section id="session"><h2>Session</h2><div class="tiles">{tiles}</div>'
            f'<p class="rate">Pass rate {shown}</p></section>')


def _experiments(experiments: Sequence[Mapping[str, Any]]) -> str:
    if not experiments:
        return '<section id="experiments"><h2>Experiments</h2><p class="empty">No records.</p>' \
               "</section>"
    rows = "".join(_experiment_row(e) for e in experiments)
    return ('<section id="experiments"><h2>Experiments</h2><table class="experiments">'
            "<thead><tr><th>Module</th><th>Experiment</th><th class=num>Cases</th>"
            "<th>Accuracy (95% Wilson interval)</th><th class=num>Success</th>"
            "<th class=num>Errors</th><th>Scores</th></tr></thead>"
            f'<tbody>{rows}</tbody></table><p class="legend">Bar: accuracy over the cases that '
            "ran; whisker: its 95% Wilson interval. Success: successes over all cases, skipped "
            "ones included.</p></section>")


def _experiment_row(experiment: Mapping[str, Any]) -> str:
    accuracy = experiment["accuracy"]
    ci = experiment["accuracy_ci"]
    if accuracy is None:
        shown = '<span class="muted">nothing ran</span>'
    else:
        shown = (f'{_bar(accuracy, ci["lower"], ci["upper"])}<span class="acc">'
                 f'{_percent(accuracy)}</span> <span class="ci">[{_percent(ci["lower"])}, '
                 f'{_percent(ci["upper"])}]</span>')
    scores = experiment["scores"] | {f"reported {k}": v
                                     for k, v in experiment["result_scores"].items()}
    shown_scores = " ".join(f'<span class="score">{_e(name)} {v["mean"]:.3g}</span>'
                            for name, v in scores.items()) or '<span class="muted">-</span>'
    name = experiment["experiment"]
    errors = experiment["errors"]
    return (f'<tr><td class="module">{_e(experiment["module"])}</td>'
            f'<td>{_e(name) if name else "<span class=muted>plain tests</span>"}</td>'
            f'<td class=num>{experiment["cases"]}</td><td class="accuracy">{shown}</td>'
            f'<td class=num>{_percent(experiment["success_rate"])}</td>'
            f'<td class="num{" bad" if errors else ""}">{errors}</td>'
            f"<td>{shown_scores}</td></tr>")


def _bar(rate: float, lower: float, upper: float) -> str:
    """The rate as a filled bar, its interval as a whisker over it."""
    w, h = _BAR_WIDTH, _BAR_HEIGHT
    fill = "good" if rate >= 0.9 else "fair" if rate >= 0.7 else "poor"
    x0, x1, xr = lower * w, upper * w, rate * w
    grid = "".join(f'<line class="grid" x1="{w * g / 4:.1f}" y1="0" x2="{w * g / 4:.1f}" '
                   f'y2="{h}"/>' for g in (1, 2, 3))
    return (f'<svg class="bar" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
            f'aria-label="accuracy {_percent(rate)}, interval {_percent(lower)} to '
            f'{_percent(upper)}"><rect class="track" x="0" y="3" width="{w}" height="{h - 6}" '
            f'rx="2"/><rect class="fill {fill}" x="0" y="3" width="{xr:.1f}" '
            f'height="{h - 6}" rx="2"/>{grid}'
            f'<line class="ci" x1="{x0:.1f}" y1="{h / 2}" x2="{x1:.1f}" y2="{h / 2}"/>'
            f'<line class="ci" x1="{x0:.1f}" y1="2" x2="{x0:.1f}" y2="{h - 2}"/>'
            f'<line class="ci" x1="{x1:.1f}" y1="2" x2="{x1:.1f}" y2="{h - 2}"/></svg>')


def _trials(experiments: Sequence[Mapping[str, Any]]) -> str:
    repeated = [e for e in experiments if e["trials"]]
    if not repeated:
        return ""
    rows: list[str] = []
    flaky: list[str] = []
    for e in repeated:
        trials = e["trials"]
        ks = " ".join(f'<span class="score">pass@{b["k"]} {_percent(b["pass_at_k"])} &middot; '
                      f'pass^{b["k"]} {_percent(b["pass_hat_k"])}</span>' for b in trials["by_k"])
        rows.append(
            f'<tr><td class="module">{_e(e["module"])}</td><td>{_e(e["experiment"] or "")}</td>'
            f'<td class=num>{trials["cases"]}</td><td class=num>{trials["attempts"]}</td>'
            f'<td class=num>{_percent(trials["pass_rate"])}</td><td>{ks}</td>'
            f'<td class="num{" bad" if trials["flaky"] else ""}">{len(trials["flaky"])}</td></tr>')
        flaky.extend(f"<li><code>{_e(case)}</code></li>" for case in trials["flaky"])
    shown_flaky = (f'<h3>Flaky cases ({len(flaky)})</h3><ul class="flaky">{"".join(flaky)}</ul>'
                   if flaky else '<p class="muted">No flaky case.</p>')
    return ('<section id="trials"><h2>Repeated trials</h2><table><thead><tr><th>Module</th>'
            "<th>Experiment</th><th class=num>Cases</th><th class=num>Attempts</th>"
            "<th class=num>Pass rate</th><th>pass@k / pass^k</th><th class=num>Flaky</th></tr>"
            f'</thead><tbody>{"".join(rows)}</tbody></table>{shown_flaky}</section>')


def _failures(records: Sequence[Record]) -> str:
    failing = [r for r in records if r["status"] not in ("success", "skipped")]
    if not failing:
        return ('<section id="failures"><h2>Failing cases</h2>'
                '<p class="empty">No failing case.</p></section>')
    items = "".join(_failure(r) for r in failing[:MAX_FAILURES])
    more = len(failing) - MAX_FAILURES
    tail = f'<p class="muted">... and {more} more failing case(s).</p>' if more > 0 else ""
    return (f'<section id="failures"><h2>Failing cases ({len(failing)})</h2>'
            f'<ul class="failures">{items}</ul>{tail}</section>')


def _failure(record: Record) -> str:
    custom = record["custom"]
    error_type = record.get("error_type") or record["status"]
    error = record.get("error") or ""
    lines = error.splitlines()
    if len(lines) > _ERROR_LINES:
        lines = ["...", *lines[-_ERROR_LINES:]]
    detail = (f"<details><summary>details</summary><pre>{_e(chr(10).join(lines))}</pre>"
              "</details>") if error else ""
    # A result's own status failed inside a test that may well have passed: say which.
    outcome = custom["outcome"] if custom["kind"] != "result" else \
        f'{record["status"]}, in a {custom["outcome"]} test'
    return (f'<li><span class="etype">{_e(error_type)}</span> <code>'
            f'{_e(custom["replicate_key"])}</code> <span class="muted">{_e(outcome)}'
            f"</span>{detail}</li>")


def _comparison(comparison_html: str | None) -> str:
    inner = comparison_html if comparison_html is not None else (
        '<p class="empty">No baseline comparison for this run.</p>')
    return (f'<section id="comparison" class="comparison"><h2>Baseline comparison</h2>'
            f"{inner}</section>")


def _percent(rate: float) -> str:
    return f"{rate * 100:.1f}%"


def _e(text: Any) -> str:
    return escape(str(text), quote=True)


_CSS: Final = """
:root{--ink:#1f2933;--muted:#6b7785;--line:#e3e7ec;--panel:#f6f8fa;--good:#2e9e5b;
--fair:#d99a1e;--poor:#d64545;--accent:#3563c9}
*{box-sizing:border-box}
body{margin:0;background:#fff;color:var(--ink);font:15px/1.45 system-ui,-apple-system,
"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1180px;margin:0 auto;padding:28px 32px 48px}
h1{font-size:26px;margin:0 0 4px}
h2{font-size:18px;margin:32px 0 12px;padding-bottom:6px;border-bottom:1px solid var(--line)}
.meta,.muted{color:var(--muted)}
.meta{margin:0}
code{font:13px/1.4 ui-monospace,"SFMono-Regular",Menlo,Consolas,"DejaVu Sans Mono",monospace;
word-break:break-all}
.tiles{display:flex;flex-wrap:wrap;gap:12px}
.tile{min-width:112px;padding:10px 14px;border-radius:8px;background:var(--panel);
border-left:5px solid var(--muted)}
.tile .count{display:block;font-size:26px;font-weight:650}
.tile .label{color:var(--muted);text-transform:uppercase;font-size:12px;letter-spacing:.06em}
.tile.passed,.tile.xpassed{border-color:var(--good)}
.tile.failed,.tile.error{border-color:var(--poor)}
.tile.skipped,.tile.xfailed{border-color:var(--fair)}
.tile.zero{opacity:.55}
.rate{font-size:16px;margin:14px 0 0}
table{width:100%;border-collapse:collapse;font-size:14px}
th{text-align:left;font-weight:600;color:var(--muted);border-bottom:2px solid var(--line);
padding:6px 10px}
td{padding:7px 10px;border-bottom:1px solid var(--line);vertical-align:middle}
tbody tr:nth-child(even){background:#fbfcfd}
.num{text-align:right;font-variant-numeric:tabular-nums}
td.bad{color:var(--poor);font-weight:650}
td.module{color:var(--muted);font-size:13px}
td.accuracy{white-space:nowrap}
.acc{font-weight:650;font-variant-numeric:tabular-nums}
.ci{color:var(--muted);font-size:13px;font-variant-numeric:tabular-nums}
svg.bar{vertical-align:middle;margin-right:10px}
svg.bar .track{fill:#edf0f3}
svg.bar .fill.good{fill:var(--good)}
svg.bar .fill.fair{fill:var(--fair)}
svg.bar .fill.poor{fill:var(--poor)}
svg.bar .grid{stroke:#fff;stroke-width:1}
svg.bar line.ci{stroke:var(--ink);stroke-width:1.6}
.score{display:inline-block;margin:1px 6px 1px 0;padding:1px 7px;border-radius:10px;
background:var(--panel);font-size:12.5px;white-space:nowrap}
ul.failures{list-style:none;margin:0;padding:0}
ul.failures li{padding:8px 10px;border-bottom:1px solid var(--line)}
.etype{display:inline-block;padding:1px 8px;border-radius:4px;background:#fdecec;
color:#a12c2c;font:600 12.5px/1.5 ui-monospace,Menlo,Consolas,"DejaVu Sans Mono",monospace}
details{margin-top:6px}
summary{cursor:pointer;color:var(--accent);font-size:13px}
pre{margin:6px 0 0;padding:10px 12px;background:var(--panel);border-radius:6px;overflow:auto;
font:12.5px/1.45 ui-monospace,Menlo,Consolas,"DejaVu Sans Mono",monospace;white-space:pre-wrap}
h3{font-size:15px;margin:18px 0 6px}
ul.flaky{margin:0;padding-left:20px;columns:2;column-gap:32px}
ul.flaky li{break-inside:avoid;margin:2px 0}
.legend{margin:8px 0 0;color:var(--muted);font-size:12.5px}
.comparison{margin-top:8px}
.comparison .empty,.empty{padding:18px;border:1px dashed #c9d1da;border-radius:8px;
color:var(--muted);background:#fcfdfe;text-align:center}
"""
