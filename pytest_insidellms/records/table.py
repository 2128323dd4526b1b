"""The scores table of the terminal summary: one row per experiment, short enough for CI.

Rows come in summary order (module, then experiment). A suite with more experiments than
``max_rows`` shows its worst ones (lowest accuracy, then most errors), worst first, and a
count of the rest. Plain ASCII: CI logs are not always UTF-8.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

_NUMBER_COLUMNS = (("cases", 6), ("accuracy [95% CI]", 22), ("success", 8), ("errors", 6))
_PLAIN_TESTS = "(tests)"


def scores_table(summary: Mapping[str, Any], width: int = 100, max_rows: int = 15) -> list[str]:
    experiments: Sequence[Mapping[str, Any]] = summary["summary"]["experiments"]
    if not experiments:
        return []
    shown = list(experiments)
    if len(shown) > max_rows:
        shown = sorted(shown, key=_badness)[:max(max_rows, 0)]
    rows = [_cells(e) for e in shown]
    fixed = sum(w + 2 for _, w in _NUMBER_COLUMNS)
    names = _name_widths([r[:2] for r in rows], max(width - fixed, 20))
    header = ("module", "experiment", *(title for title, _ in _NUMBER_COLUMNS))
    lines = [_line(header, names), _line(tuple("-" * w for w in
                                               (*names, *(w for _, w in _NUMBER_COLUMNS))),
                                         names)]
    lines.extend(_line(r, names) for r in rows)
    hidden = len(experiments) - len(shown)
    if hidden:
        lines.append(f"... and {hidden} more experiment{'s' if hidden != 1 else ''}")
    return lines


def _badness(experiment: Mapping[str, Any]) -> tuple[float, int, str, str]:
    accuracy = experiment["accuracy"]
    return (2.0 if accuracy is None else accuracy, -experiment["errors"],
            experiment["module"], experiment["experiment"] or "")


def _cells(experiment: Mapping[str, Any]) -> tuple[str, ...]:
    accuracy = experiment["accuracy"]
    if accuracy is None:
        shown_accuracy = "-"
    else:
        ci = experiment["accuracy_ci"]
        shown_accuracy = (f"{_percent(accuracy)} [{ci['lower'] * 100:.1f}, "
                          f"{ci['upper'] * 100:.1f}]")
    return (experiment["module"], experiment["experiment"] or _PLAIN_TESTS,
            str(experiment["cases"]), shown_accuracy, _percent(experiment["success_rate"]),
            str(experiment["errors"]))


def _percent(rate: float) -> str:
    return f"{rate * 100:.1f}%"


def _name_widths(names: Sequence[tuple[str, ...]], room: int) -> tuple[int, int]:
    """Widths of the module and experiment columns; the longer one gives way first."""
    module = max(len("module"), *(len(n[0]) for n in names))
    experiment = max(len("experiment"), *(len(n[1]) for n in names))
    room -= 2  # the separator between the two name columns
    while module + experiment > room and max(module, experiment) > 10:
        if module >= experiment:
            module -= 1
        else:
            experiment -= 1
    return module, experiment


def _line(cells: Sequence[str], names: tuple[int, int]) -> str:
    widths = (*names, *(w for _, w in _NUMBER_COLUMNS))
    parts = []
    for index, (cell, w) in enumerate(zip(cells, widths)):
        cell = _fit(cell, w)
        parts.append(cell.ljust(w) if index < 2 else cell.rjust(w))
    return "  ".join(parts).rstrip()


def _fit(text: str, width: int) -> str:
    """Cut from the left: a module path's file name and a test's tail say the most."""
    return text if len(text) <= width else "..." + text[len(text) - width + 3:]
