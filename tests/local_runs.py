"""Read a tracked pytest session back from the local backend, for assertions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_insidellms.experiment_tracking.local import load_run_dir


@dataclass
class RunView:
    path: Path
    data: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.data["metadata"]["run_name"])

    @property
    def status(self) -> str:
        return str(self.data["final_state"]["status"])

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.data["params"])

    @property
    def metrics(self) -> dict[str, float]:
        """The last value of each metric."""
        last: dict[str, float] = {}
        for entry in self.data["metrics"]:
            last.update(entry["metrics"])
        return last

    def history(self, key: str) -> list[tuple[int, float]]:
        return [(e["step"], e["metrics"][key]) for e in self.data["metrics"] if key in e["metrics"]]


@dataclass
class SessionView:
    run: RunView
    modules: dict[str, RunView]


def sessions(track_dir: Path, project: str = "insideLLMs") -> list[SessionView]:
    project_dir = track_dir / project
    if not project_dir.is_dir():
        return []
    found = []
    for run_dir in sorted(p for p in project_dir.iterdir() if (p / "metadata.json").is_file()):
        run = RunView(run_dir, load_run_dir(run_dir))
        modules = {}
        for child_id in run.data["children"]:
            child_dir = run_dir / "children" / child_id
            child = RunView(child_dir, load_run_dir(child_dir))
            modules[child.name] = child
        found.append(SessionView(run, modules))
    return found


def only_session(track_dir: Path, project: str = "insideLLMs") -> SessionView:
    found = sessions(track_dir, project)
    assert len(found) == 1, f"expected one session run under {track_dir}, found {len(found)}"
    return found[0]


def comparable(session: SessionView) -> dict[str, Any]:
    """What must be identical between two runs of the same suite (timings stripped)."""
    def strip(run: RunView) -> dict[str, Any]:
        metrics = {k: v for k, v in run.metrics.items() if "duration" not in k and "latency" not in k}
        params = {k: v for k, v in run.params.items()
                  if k not in ("pytest_command", "xdist_workers")}
        return {"status": run.status, "metrics": metrics, "params": params}

    return {
        "session": strip(session.run),
        "modules": {name: strip(run) for name, run in sorted(session.modules.items())},
    }
