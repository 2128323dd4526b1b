"""Kill, interrupt and outage scenarios: how many results survive?

    python benchmarks/reliability.py            # every scenario (about 2 minutes)
    python benchmarks/reliability.py --n 50     # results per scenario

Each scenario runs a generated suite of N tests that return an ExperimentResult, followed by a
test that hangs; once the hanging test has started, the session is hit (SIGKILL, SIGINT,
SIGTERM, a worker crash) and afterwards every backend is read back through its own reader.
The outage scenario kills a real ``mlflow server`` mid-session, restarts it, replays the spool
with ``python -m pytest_insidellms sync`` twice, and counts results and duplicates in MLflow.
The readers are the test suite's (``tests/``).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from local_runs import only_session  # noqa: E402
from mlflow_server import MlflowServer, free_port  # noqa: E402
from tensorboard_reader import read_run  # noqa: E402
from wandb_reader import read_runs  # noqa: E402

SUITE = """
import os, pathlib, time
import pytest
from pytest_insidellms import ExperimentResult, ModelInfo, ProbeCategory, ProbeResult

@pytest.mark.parametrize("n", range({n}))
def test_result(n):
    return ExperimentResult("e", ModelInfo("m", "p", "i"), "qa", ProbeCategory.LOGIC,
                            [ProbeResult(i) for i in range(n % 5 + 1)])

def test_zz_hangs():
    pathlib.Path("ready").write_text("ready")
    if os.environ.get("CRASH_WORKER"):
        os._exit(1)
    time.sleep(120)
"""
ALL_BACKENDS = "local,mlflow,tensorboard,wandb"


@dataclass
class Outcome:
    scenario: str
    expected: int
    found: dict[str, int]
    statuses: dict[str, str]

    def row(self) -> str:
        lost = {b: self.expected - n for b, n in self.found.items()}
        return (f"| {self.scenario} | {self.expected} | "
                + ", ".join(f"{b} {n}" for b, n in self.found.items()) + " | "
                + ", ".join(f"{b} {n}" for b, n in lost.items()) + " | "
                + ", ".join(f"{b} {s}" for b, s in self.statuses.items()) + " |")


def run_suite(workdir: Path, n: int, backends: str, args: list[str], hit: Callable[[subprocess.Popen[bytes]], None],
              env_extra: dict[str, str] | None = None) -> int:
    workdir.mkdir(parents=True)
    (workdir / "test_suite.py").write_text(textwrap.dedent(SUITE.format(n=n)))
    (workdir / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("INSIDELLMS_", "PYTEST_", "MLFLOW_", "WANDB_"))}
    env.update(env_extra or {})
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
         "--track", backends, *args], cwd=workdir, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (workdir / "ready").exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the suite in {workdir} never reached its hanging test")
        time.sleep(0.05)
    time.sleep(1.0)  # the finished tests' reports reach the controller
    hit(process)
    try:
        return process.wait(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)


def read_back(workdir: Path, backends: str) -> tuple[dict[str, int], dict[str, str]]:
    track = workdir / "experiments"
    found: dict[str, int] = {}
    statuses: dict[str, str] = {}
    if "local" in backends:
        session = only_session(track)
        module = session.modules["test_suite.py"]
        found["local"] = _results(module.metrics)
        statuses["local"] = f"{session.run.status}/{module.status}"
    if "mlflow" in backends:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=f"sqlite:///{track / 'mlflow.db'}")
        experiment = client.get_experiment_by_name("insideLLMs")
        runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
        module = runs["test_suite.py"]
        found["mlflow"] = _results(module.data.metrics)
        session = next(r for name, r in runs.items() if name != "test_suite.py")
        statuses["mlflow"] = f"{session.info.status}/{module.info.status}".lower()
    if "tensorboard" in backends:
        (session_dir,) = [p for p in (track / "tensorboard" / "insideLLMs").iterdir() if p.is_dir()]
        module = read_run(session_dir / "test_suite.py")
        found["tensorboard"] = _results(module.scalars)
        statuses["tensorboard"] = (module.texts.get("run/status") or [(0, "?")])[-1][1].strip()
    if "wandb" in backends:
        runs = {r.display_name: r for r in read_runs(track, wait_for_exit=10)}
        module = runs["test_suite.py"]
        found["wandb"] = _results(module.summary)
        statuses["wandb"] = f"exit {module.exit_code}"
    return found, statuses


def _results(metrics: object) -> int:
    return sum(1 for key in metrics if str(key).startswith("test_result/")  # type: ignore[attr-defined]
               and str(key).endswith("/total_count"))


def kill_scenarios(base: Path, n: int) -> list[Outcome]:
    def group(sig: signal.Signals) -> Callable[[subprocess.Popen[bytes]], None]:
        return lambda p: os.killpg(p.pid, sig)

    def leader(sig: signal.Signals) -> Callable[[subprocess.Popen[bytes]], None]:
        return lambda p: p.send_signal(sig)

    scenarios: list[tuple[str, str, list[str], Callable[[subprocess.Popen[bytes]], None], dict[str, str]]] = [
        ("SIGKILL, one process", "local", [], group(signal.SIGKILL), {}),
        ("SIGKILL, -n 2 (controller and workers)", "local", ["-n", "2"], group(signal.SIGKILL), {}),
        ("worker crash mid-test, -n 2", "local", ["-n", "2"], lambda p: None, {"CRASH_WORKER": "1"}),
        ("SIGINT (Ctrl-C), one process", ALL_BACKENDS, [], leader(signal.SIGINT), {}),
        ("SIGINT (Ctrl-C), -n 2", ALL_BACKENDS, ["-n", "2"], group(signal.SIGINT), {}),
        ("SIGTERM, one process", ALL_BACKENDS, [], leader(signal.SIGTERM), {}),
        ("SIGTERM, -n 2", ALL_BACKENDS, ["-n", "2"], leader(signal.SIGTERM), {}),
    ]
    outcomes = []
    for i, (name, backends, args, hit, env) in enumerate(scenarios):
        workdir = base / f"kill-{i}"
        run_suite(workdir, n, backends, args, hit, env)
        found, statuses = read_back(workdir, backends)
        outcomes.append(Outcome(name, n, found, statuses))
        print(f"  done: {name}", file=sys.stderr)
    return outcomes


def outage_scenario(base: Path, n: int) -> tuple[Outcome, str]:
    port = free_port()
    server = MlflowServer(base / "server", port=port)
    url = server.wait_ready()
    workdir = base / "outage"
    assert server.process is not None

    def kill_server(process: subprocess.Popen[bytes]) -> None:
        server.stop()  # the session is in its hanging test: later calls fail
        os.killpg(process.pid, signal.SIGINT)

    # The server dies after N results; the session then ends (Ctrl-C) with calls to deliver.
    run_suite(workdir, n, "mlflow", [], kill_server, {"MLFLOW_TRACKING_URI": url})
    restarted = MlflowServer(base / "server", port=port)
    restarted.wait_ready()
    try:
        spool = workdir / "experiments" / "spool" / "mlflow"
        command = [sys.executable, "-m", "pytest_insidellms", "sync", str(spool), "--to", "mlflow",
                   "--tracking-uri", url]
        first = subprocess.run(command, capture_output=True, text=True, check=True)
        second = subprocess.run(command, capture_output=True, text=True, check=True)
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=url)
        experiment = client.get_experiment_by_name("insideLLMs")
        runs = client.search_runs([experiment.experiment_id])
        module = next(r for r in runs if r.info.run_name == "test_suite.py")
        duplicates = sum(
            len(steps) - len(set(steps))
            for run in runs for key in run.data.metrics
            for steps in [[m.step for m in client.get_metric_history(run.info.run_id, key)]])
        note = (f"first sync: {first.stdout.splitlines()[0].split(': ', 1)[-1]}; "
                f"second sync: {second.stdout.splitlines()[0].split(': ', 1)[-1]}; "
                f"duplicate metric points: {duplicates}; runs in MLflow: {len(runs)}")
        outcome = Outcome("MLflow server killed mid-session, restarted, sync", n,
                          {"mlflow": _results(module.data.metrics)},
                          {"mlflow": module.info.status.lower()})
        return outcome, note
    finally:
        restarted.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30, help="results before the hit (default 30)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        print(f"$ python benchmarks/reliability.py --n {args.n}")
        outcomes = kill_scenarios(base, args.n)
        outage, note = outage_scenario(base, args.n)
    print("| scenario | results before the hit | recovered | lost | statuses (session/module) |")
    print("|---|---|---|---|---|")
    for outcome in [*outcomes, outage]:
        print(outcome.row())
    print(f"\noutage: {note}")
    lost = sum(o.expected - n for o in [*outcomes, outage] for n in o.found.values())
    print(f"{len(outcomes)} kill/interrupt scenarios and 1 outage scenario; results lost: {lost}")


if __name__ == "__main__":
    main()
