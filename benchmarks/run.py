#!/usr/bin/env python
"""Performance benchmark of pytest-insidellms (see benchmarks/README.md).

Generates synthetic eval suites in a temporary directory, runs each one as a separate pytest
process and prints a table of wall time, CPU time and peak memory (medians of ``--repeat``
runs), the derived per-test costs and whether each target of the Performance issue holds.

    python benchmarks/run.py                 # everything, about 6-8 minutes on 2 cores
    python benchmarks/run.py --quick         # smaller N, one run each
    python benchmarks/run.py --only mlflow   # one section (repeatable)
    python benchmarks/run.py --smoke         # tiny N: checks the script itself works

It starts (and stops) its own ``mlflow server`` on 127.0.0.1 for the MLflow section.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SECTIONS = ("off", "local", "mlflow", "backends", "xdist", "memory")
SDKS = ("mlflow", "wandb", "tensorboardX", "tensorboard", "torch")

#: Runs one command and reports its wall time and its children's CPU time and peak RSS. A
#: fresh process per measured run, so RUSAGE_CHILDREN covers exactly that run (pytest and,
#: under xdist, its workers: ru_maxrss is the largest single process).
WRAPPER = textwrap.dedent("""
    import json, resource, subprocess, sys, time
    command, log = json.loads(sys.argv[1]), sys.argv[2]
    with open(log, "wb") as out:
        start = time.perf_counter()
        code = subprocess.call(command, stdout=out, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL)
        wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({"rc": code, "wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
                      "rss_kb": usage.ru_maxrss}))
""")


# -- sizes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """How big each section's suites are. Each slow MLflow baseline has its own N: its cost
    per test is the same at any N, so a small N measures it within the time budget."""

    repeat: int
    modules: int
    off_n: int
    local_ns: tuple[int, int]
    variant_n: int
    mlflow_small: int
    mlflow_n: int
    per_result_n: int
    per_value_n: int
    backends_n: int
    xdist_n: int
    memory_ns: tuple[int, ...]


PLANS = {
    "default": Plan(repeat=3, modules=20, off_n=2000, local_ns=(1000, 10000), variant_n=5000,
                    mlflow_small=20, mlflow_n=500, per_result_n=100, per_value_n=10,
                    backends_n=1000, xdist_n=2000, memory_ns=(1000, 10000, 20000)),
    "quick": Plan(repeat=1, modules=10, off_n=500, local_ns=(200, 2000), variant_n=2000,
                  mlflow_small=10, mlflow_n=200, per_result_n=50, per_value_n=5,
                  backends_n=200, xdist_n=1000, memory_ns=(200, 2000, 5000)),
    # Sizes shared between sections where possible (one run serves several rows), no small-N
    # MLflow runs (mlflow_small=0: costs per test include start-up) and no warm-up runs.
    "smoke": Plan(repeat=1, modules=2, off_n=8, local_ns=(8, 8), variant_n=8,
                  mlflow_small=0, mlflow_n=2, per_result_n=2, per_value_n=2,
                  backends_n=8, xdist_n=8, memory_ns=(8, 8)),
}


# -- synthetic suites -----------------------------------------------------------------------

HEADER = '''\
import time

import pytest

from pytest_insidellms import (
    ExperimentResult, ModelInfo, ProbeCategory, ProbeResult, ProbeScore, ResultStatus,
)

MODEL = ModelInfo(name="toy-model", provider="bench", model_id="toy-model-1")


def make_result(case):
    """What an eval case produces: ten probe results and a score."""
    results = [
        ProbeResult(input=f"question {{case}}.{{j}}", output=f"answer {{j}}", latency_ms=1.0 + j,
                    status=ResultStatus.ERROR if (case + j) % 7 == 0 else ResultStatus.SUCCESS)
        for j in range(10)
    ]
    passed = sum(r.status is ResultStatus.SUCCESS for r in results)
    return ExperimentResult(
        experiment_id=f"{module}-{{case}}", model_info=MODEL, probe_name="bench-probe",
        probe_category=ProbeCategory.REASONING, results=results,
        score=ProbeScore(accuracy=passed / 10, mean_latency_ms=5.5),
    )

'''

BODIES = {
    # Builds the same result and checks it: a suite that does not use the plugin at all.
    "plain": '''
@pytest.mark.parametrize("case", range({count}))
def test_case(case):
    assert make_result(case).total_count == 10
''',
    "returned": '''
@pytest.mark.parametrize("case", range({count}))
def test_case(case):
    return make_result(case)
''',
    "latency": '''
@pytest.mark.parametrize("case", range({count}))
def test_case(case):
    time.sleep(0.001)  # waiting for the model, as an eval test does
    return make_result(case)
''',
    # One aggregated ExperimentResult per module: each case is one of its probe results.
    "marker": '''
@pytest.mark.experiment(name="bench", model_name="toy-model", probe_name="bench-probe")
@pytest.mark.parametrize("case", range({count}))
def test_case(case):
    assert make_result(case).total_count == 10
''',
    "fixture": '''
@pytest.mark.parametrize("case", range({count}))
def test_case(case, tracker):
    result = make_result(case)
    tracker.log_metrics({{"accuracy": result.score.accuracy, "latency_ms": 5.5,
                         "errors": float(result.error_count)}})
    tracker.log_params({{f"case_{{case}}/model": result.model_info.name}})
''',
    # The same results, logged by hand through MlflowClient (conftest below): the baselines.
    "baseline": '''
@pytest.mark.parametrize("case", range({count}))
def test_case(case, bench_log):
    bench_log(make_result(case), f"test_case/{{case}}/")
''',
}

#: The hand-written MLflow logging the plugin is compared with. BENCH_MLFLOW_MODE picks how:
#: per-value (log_metric/log_param per value), per-result (one log_batch per result) or
#: max-batch (buffered, sent in log_batch requests as full as MLflow allows).
BASELINE_CONFTEST = '''\
import os
import time

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
from mlflow.entities import Metric, Param  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from pytest_insidellms.experiment_tracking.results import flatten_experiment_result  # noqa: E402

MODE = os.environ.get("BENCH_MLFLOW_MODE", "none")
MAX_METRICS, MAX_PARAMS, MAX_ENTITIES = 1000, 100, 1000


class RunLogger:
    def __init__(self, client, run_id):
        self.client, self.run_id, self.step = client, run_id, 0
        self.metrics, self.params = [], []

    def log(self, result, prefix):
        metrics, params = flatten_experiment_result(result, prefix)
        now, step = int(time.time() * 1000), self.step
        self.step += 1
        if MODE == "per-value":
            for key, value in metrics.items():
                self.client.log_metric(self.run_id, key, value, timestamp=now, step=step)
            for key, value in params.items():
                self.client.log_param(self.run_id, key, str(value))
            return
        batch_metrics = [Metric(k, v, now, step) for k, v in metrics.items()]
        batch_params = [Param(k, str(v)) for k, v in params.items()]
        if MODE == "per-result":
            self.client.log_batch(self.run_id, metrics=batch_metrics, params=batch_params)
            return
        self.metrics += batch_metrics
        self.params += batch_params
        if len(self.params) >= MAX_PARAMS or len(self.metrics) + len(self.params) >= MAX_ENTITIES:
            self.flush(final=False)

    def flush(self, final=True):
        while self.params or self.metrics:
            params, self.params = self.params[:MAX_PARAMS], self.params[MAX_PARAMS:]
            room = min(MAX_METRICS, MAX_ENTITIES - len(params))
            metrics, self.metrics = self.metrics[:room], self.metrics[room:]
            self.client.log_batch(self.run_id, metrics=metrics, params=params)
            if not final and len(self.params) < MAX_PARAMS and (
                    len(self.metrics) + len(self.params) < MAX_ENTITIES):
                return


@pytest.fixture(scope="session")
def bench_session():
    client = MlflowClient()
    name = os.environ["BENCH_MLFLOW_EXPERIMENT"]
    experiment = client.get_experiment_by_name(name)
    experiment_id = (experiment.experiment_id if experiment is not None
                     else client.create_experiment(name))
    run = client.create_run(experiment_id, run_name="session")
    yield client, experiment_id, run.info.run_id
    client.set_terminated(run.info.run_id)


@pytest.fixture(scope="module")
def bench_module(bench_session, request):
    client, experiment_id, parent = bench_session
    run = client.create_run(experiment_id, run_name=request.module.__name__,
                            tags={"mlflow.parentRunId": parent})
    logger = RunLogger(client, run.info.run_id)
    yield logger
    logger.flush()
    client.set_terminated(run.info.run_id)


@pytest.fixture
def bench_log(bench_module):
    return bench_module.log
'''


def split(total: int, parts: int) -> list[int]:
    parts = max(1, min(parts, total))
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def write_suite(root: Path, kind: str, n: int, modules: int) -> Path:
    path = root / f"{kind}-{n}"
    if path.is_dir():
        return path
    path.mkdir(parents=True)
    ini = ["[pytest]"]
    if importlib.util.find_spec("pytest_asyncio") is not None:
        ini.append("asyncio_default_fixture_loop_scope = function")  # else it warns every run
    (path / "pytest.ini").write_text("\n".join(ini) + "\n")
    if kind == "baseline":
        (path / "conftest.py").write_text(BASELINE_CONFTEST)
    for index, count in enumerate(split(n, modules)):
        module = f"test_m{index:03d}"
        source = HEADER.format(module=module) + BODIES[kind].format(count=count)
        (path / f"{module}.py").write_text(source)
    return path


# -- measuring ------------------------------------------------------------------------------


@dataclass
class Sample:
    wall: float
    cpu: float
    rss_mb: float
    requests: dict[str, int] = field(default_factory=dict)


@dataclass
class Result:
    """The samples of one configuration; every figure shown is a median."""

    label: str
    n: int
    samples: list[Sample] = field(default_factory=list)

    def median(self, attribute: str) -> float:
        return statistics.median(float(getattr(s, attribute)) for s in self.samples)

    @property
    def wall(self) -> float:
        return self.median("wall")

    @property
    def cpu(self) -> float:
        return self.median("cpu")

    @property
    def rss(self) -> float:
        return self.median("rss_mb")

    def spread(self, attribute: str = "wall") -> float:
        """Half the range of the samples, relative to their median (the noise band)."""
        values = [float(getattr(s, attribute)) for s in self.samples]
        return (max(values) - min(values)) / 2 / statistics.median(values)

    @property
    def requests(self) -> int:
        return int(statistics.median(sum(s.requests.values()) for s in self.samples))


@dataclass(frozen=True)
class Job:
    label: str
    kind: str
    n: int
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    #: "fresh": a new --track-dir per run (deleted after it); "shared": one per ``store``,
    #: warmed up by an unmeasured run (as after a project's first session); "none": no
    #: --track-dir.
    track_dir: str = "fresh"
    store: str = ""
    count_requests: bool = False

    @property
    def key(self) -> tuple[Any, ...]:
        return (self.kind, self.n, self.args, self.env, self.track_dir, self.store)


class Bench:
    def __init__(self, plan: Plan, work: Path, smoke: bool = False, keep: bool = False) -> None:
        self.plan = plan
        self.keep = keep
        #: --smoke: as few processes as possible (no warm-up runs, runs shared between rows)
        self.smoke = smoke
        self.work = work
        self.results: dict[tuple[Any, ...], Result] = {}
        self.server: MlflowServer | None = None
        self.runs = 0
        self.env = clean_env()
        self.warm: set[str] = set()

    def suite(self, kind: str, n: int) -> Path:
        fresh = not (self.work / "suites" / f"{kind}-{n}").is_dir()
        path = write_suite(self.work / "suites", kind, n, self.plan.modules)
        if fresh and not self.smoke:  # compile and cache the rewritten test modules, unmeasured
            self._pytest(path, ["--collect-only", "-q", "-p", "no:insidellms"], {},
                         self.work / "warmup.log")
        return path

    def measure(self, jobs: Sequence[Job], repeat: int | None = None) -> list[Result]:
        """Run each job ``repeat`` times, interleaved (A B C A B C ...) so that a change in the
        machine's load during the section hits every configuration alike."""
        repeat = repeat or self.plan.repeat
        for job in jobs:
            self.results.setdefault(job.key, Result(job.label, job.n))
            self.suite(job.kind, job.n)
            store = job.store or repr(job.key)
            if job.track_dir == "shared" and not self.smoke and store not in self.warm:
                self.warm.add(store)
                self._run(job, warmup=True)
        for _ in range(repeat):
            for job in jobs:
                if len(self.results[job.key].samples) < repeat:
                    self.results[job.key].samples.append(self._run(job))
        return [self.results[job.key] for job in jobs]

    def _run(self, job: Job, warmup: bool = False) -> Sample:
        self.runs += 1
        suite = self.suite(job.kind, job.n)
        args = ["-q", "-p", "no:cacheprovider", *job.args]
        tag = re.sub(r"[^\w.-]+", "_", f"{job.kind}-{job.n}-{' '.join(job.args)}")[:80]
        fresh = self.work / "track" / f"{tag}-{self.runs}"
        if job.track_dir == "fresh":
            args += ["--track-dir", str(fresh)]
        elif job.track_dir == "shared":
            args += ["--track-dir", str(self.work / "track" / f"shared-{job.store or tag}")]
        env = dict(job.env)
        log = self.work / "logs" / f"{self.runs:04d}-{tag}.log"
        mark = self.server.log_size() if (self.server and job.count_requests) else 0
        sample, code = self._pytest(suite, args, env, log)
        if not self.keep:
            shutil.rmtree(fresh, ignore_errors=True)
        if self.server and job.count_requests:
            sample.requests = self.server.requests_since(mark)
        text = log.read_text(errors="replace")
        if code != 0 or f"{job.n} passed" not in text:
            raise SystemExit(f"benchmark run failed: {job.label} (N={job.n}); log {log}:\n"
                             + "\n".join(text.splitlines()[-30:]))
        what = "warm-up" if warmup else "run"
        extra = f" {sum(sample.requests.values())} requests" if sample.requests else ""
        progress(f"  {what} {job.label} N={job.n}: {sample.wall:.2f} s, {sample.rss_mb:.0f} MB"
                 f"{extra}")
        return sample

    def _pytest(self, suite: Path, args: list[str], env: dict[str, str], log: Path
                ) -> tuple[Sample, int]:
        log.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pytest", *args]
        wrapper = [sys.executable, "-c", WRAPPER, json.dumps(command), str(log)]
        done = subprocess.run(wrapper, cwd=suite, env={**self.env, **env}, capture_output=True,
                              text=True, check=True)
        data = json.loads(done.stdout)
        return Sample(wall=data["wall"], cpu=data["cpu"], rss_mb=data["rss_kb"] / 1024), data["rc"]


def clean_env() -> dict[str, str]:
    """The caller's environment without anything that would change what is measured."""
    drop = ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "MLFLOW_TRACKING_URI", "PYTHONWARNINGS",
            "WANDB_MODE", "WANDB_API_KEY", "WANDB_DIR", "PYTEST_XDIST_AUTO_NUM_WORKERS")
    env = {k: v for k, v in os.environ.items()
           if k not in drop and not k.startswith("INSIDELLMS_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- the MLflow server ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class MlflowServer:
    """``mlflow server`` on 127.0.0.1 with a sqlite store, in its own process group. Its
    uvicorn access log (one line per request) is how requests are counted."""

    ACCESS = re.compile(r'"(GET|POST|PATCH|PUT|DELETE) (/[^ ?"]*)')

    def __init__(self, root: Path, database: Path) -> None:
        self.root = root
        self.database = database
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = root / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.ready = False

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        env = clean_env()
        env.update(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", MLFLOW_DISABLE_TELEMETRY="true")
        command = [sys.executable, "-m", "mlflow", "server",
                   "--backend-store-uri", f"sqlite:///{self.database}",
                   "--artifacts-destination", str(self.root / "artifacts"),
                   "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=env, cwd=self.root,
                                            start_new_session=True)

    def wait_ready(self, timeout: float = 120.0) -> None:
        if self.ready:
            return
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise SystemExit(f"mlflow server exited:\n{self.log_path.read_text()[-3000:]}")
            with contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError), \
                    opener.open(f"{self.url}/health", timeout=2) as response:
                if response.status == 200:
                    self.ready = True
                    return
            time.sleep(0.2)
        raise SystemExit(f"mlflow server not ready after {timeout} s")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            try:
                process.wait(timeout=10)
                break
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # uvicorn's worker may outlive its parent

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def requests_since(self, offset: int) -> dict[str, int]:
        """Requests by path logged after ``offset``; waits until the log stops growing (the
        access line is written just after the response)."""
        size = -1
        for _ in range(20):
            time.sleep(0.1)
            if self.log_size() == size:
                break
            size = self.log_size()
        counts: dict[str, int] = {}
        with open(self.log_path, "rb") as log:
            log.seek(offset)
            for line in log.read().decode(errors="replace").splitlines():
                match = self.ACCESS.search(line)
                if match and match.group(2) != "/health":
                    path = match.group(2).rsplit("/", 1)[-1]
                    counts[path] = counts.get(path, 0) + 1
        return counts


# -- the table ------------------------------------------------------------------------------


@dataclass
class Row:
    id: str
    what: str
    result: Result | None = None
    note: str = ""
    n: int | None = None


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    targets: list[tuple[str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def row(self, id: str, what: str, result: Result | None = None, note: str = "",
            n: int | None = None) -> None:
        self.rows.append(Row(id, what, result, note, n))
        line = format_row(self.rows[-1])
        progress("ROW " + line)

    def target(self, name: str, ok: bool | None, detail: str) -> None:
        verdict = "n/a" if ok is None else ("PASS" if ok else "FAIL")
        self.targets.append((name, verdict, detail))
        progress(f"TARGET {verdict}: {name}: {detail}")


def format_row(row: Row) -> str:
    r = row.result
    n = row.n if row.n is not None else (r.n if r else None)
    cells = [row.id, row.what, f"{n:,}" if n is not None else "",
             f"{r.wall:.2f}" if r else "", f"{r.cpu:.2f}" if r else "",
             f"{r.rss:.0f}" if r else "", row.note]
    return "| " + " | ".join(cells) + " |"


def us_per_test(extra_seconds: float, n: int) -> float:
    return extra_seconds / n * 1e6


# -- sections -------------------------------------------------------------------------------


def section_off(bench: Bench, report: Report) -> None:
    n = bench.plan.off_n
    plain_off, plain_plugin = bench.measure([
        Job("no plugin (-p no:insidellms)", "plain", n, ("-p", "no:insidellms"), track_dir="none"),
        Job("plugin installed, tracking off", "plain", n, track_dir="none"),
    ])
    delta = plain_plugin.wall - plain_off.wall
    cpu_delta = plain_plugin.cpu - plain_off.cpu
    cpu_noise = max(plain_off.spread("cpu"), plain_plugin.spread("cpu"), 0.02) * plain_off.cpu
    report.row("1a", "no plugin (-p no:insidellms)", plain_off,
               f"noise: ±{plain_off.spread():.1%} wall, ±{plain_off.spread('cpu'):.1%} CPU "
               f"(half-range of {len(plain_off.samples)} runs)")
    report.row("1b", "plugin installed, tracking off", plain_plugin,
               f"vs 1a: {cpu_delta * 1000:+.0f} ms CPU ({cpu_delta / plain_off.cpu:+.1%}), "
               f"{delta * 1000:+.0f} ms wall ({delta / plain_off.wall:+.1%})")
    known = len(plain_off.samples) >= 3  # a noise band needs a few runs
    report.target("tracking off is within noise of -p no:insidellms",
                  abs(cpu_delta) <= cpu_noise if known else None,
                  f"{cpu_delta * 1000:+.0f} ms CPU on {plain_off.cpu:.2f} s; noise band "
                  f"±{cpu_noise * 1000:.0f} ms (largest half-range of either, at least 2%)"
                  + ("" if known else "; fewer than 3 runs: no verdict"))

    total, top, sdks = import_times(["import pytest_insidellms.plugin"])
    own, _, _ = import_times(["import pytest", "import pytest_insidellms.plugin"],
                             after="pytest_insidellms")
    report.row("1c", "python -X importtime -c 'import pytest_insidellms.plugin'", None,
               f"{total / 1000:.0f} ms cumulative, of which pytest_insidellms itself "
               f"{own / 1000:.0f} ms; SDKs imported: {', '.join(sdks) or 'none'}")
    report.notes.append("importtime, top cumulative entries of "
                        "`python -X importtime -c 'import pytest_insidellms.plugin'`:\n"
                        + "\n".join(f"    {us / 1000:8.1f} ms  {name}" for us, name in top))
    session_sdks = session_imports(bench)
    report.row("1d", "SDKs imported by a pytest session with the plugin, tracking off", None,
               ", ".join(session_sdks) or f"none of {', '.join(SDKS)}")
    report.target("no SDK imported when tracking is off", not sdks and not session_sdks,
                  f"absent from the plugin import and the session: {', '.join(SDKS)}"
                  if not sdks and not session_sdks else f"imported: {sdks + session_sdks}")


IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def parse_importtime(stderr: str) -> list[tuple[int, int, str]]:
    """(cumulative us, depth, module) per line of ``-X importtime`` output."""
    entries = []
    for line in stderr.splitlines():
        match = IMPORT_LINE.match(line)
        if match:
            entries.append((int(match.group(2)), len(match.group(3)) // 2, match.group(4)))
    return entries


def import_times(statements: list[str], after: str | None = None
                 ) -> tuple[int, list[tuple[int, str]], list[str]]:
    """Cumulative microseconds of the top-level imports the statements cause (from the first
    one named ``after`` on, if given), the top entries at any depth, and the SDKs seen."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "; ".join(statements)],
                          capture_output=True, text=True, env=clean_env(), check=True)
    entries = parse_importtime(done.stderr)
    # Interpreter start-up imports come first; the statements' own imports follow `site`.
    start = max((i for i, e in enumerate(entries) if e[2] == "site" and e[1] == 0), default=-1) + 1
    ours = entries[start:]
    if after is not None:
        first = next(i for i, e in enumerate(ours) if e[2].startswith(after) and e[1] == 0)
        ours = ours[first:]
    total = sum(us for us, depth, _ in ours if depth == 0)
    top = sorted(((us, name) for us, _, name in ours), reverse=True)[:12]
    sdks = sorted({name.split(".")[0] for _, _, name in entries if name.split(".")[0] in SDKS})
    return total, top, sdks


def session_imports(bench: Bench) -> list[str]:
    """SDKs a whole pytest session (plugin loaded, tracking off) imports."""
    suite = bench.suite("returned", min(bench.plan.off_n, 20))
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "pytest", "-q",
                           "-p", "no:cacheprovider"], cwd=suite, capture_output=True, text=True,
                          env=bench.env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"pytest session failed:\n{done.stdout[-2000:]}")
    names = {name.split(".")[0] for _, _, name in parse_importtime(done.stderr)}
    return sorted(names & set(SDKS))


def overhead_note(tracked: Result, off: Result) -> tuple[float, float, str]:
    """Tracking's cost per test in CPU time (the judged figure: on a shared machine wall time
    also counts waiting for other processes) and as a share of pytest's own CPU per test."""
    per_test = us_per_test(tracked.cpu - off.cpu, tracked.n)
    pytest_per_test = us_per_test(off.cpu, off.n)
    share = per_test / pytest_per_test
    wall = us_per_test(tracked.wall - off.wall, tracked.n)
    wall_share = wall / us_per_test(off.wall, off.n)
    return per_test, share, (f"{per_test:+.0f} us/test CPU ({share:+.1%} of pytest's "
                             f"{pytest_per_test:.0f}); {wall:+.0f} us/test wall "
                             f"({wall_share:+.1%})")


def section_local(bench: Bench, report: Report) -> None:
    plan = bench.plan
    ids = iter("abcdefghijkl")
    for n in plan.local_ns:
        off, local = bench.measure([
            Job("returned results, tracking off", "returned", n, track_dir="none"),
            Job("returned results, --track local", "returned", n, ("--track", "local")),
        ])
        report.row(f"2{next(ids)}", "returned results, tracking off", off,
                   f"pytest's own cost: {us_per_test(off.cpu, n):.0f} us/test CPU, "
                   f"{us_per_test(off.wall, n):.0f} us/test wall")
        per_test, share, note = overhead_note(local, off)
        report.row(f"2{next(ids)}", "returned results, --track local", local, note)
    report.target(f"--track local overhead < 10% of pytest's per-test cost at N={n:,}",
                  share < 0.10, f"{per_test:.0f} us/test CPU = {share:.1%}")
    for kind, what in (("marker", "marker-aggregated (one result per module)"),
                       ("fixture", "tracker fixture (log_metrics + log_params per test)")):
        off, local = bench.measure([
            Job(f"{kind}, tracking off", kind, plan.variant_n, track_dir="none"),
            Job(f"{kind}, --track local", kind, plan.variant_n, ("--track", "local")),
        ])
        report.row(f"2{next(ids)}", f"{what}, tracking off", off)
        report.row(f"2{next(ids)}", f"{what}, --track local", local, overhead_note(local, off)[2])


def section_mlflow(bench: Bench, report: Report) -> None:
    # The server's store is the very file the embedded-sqlite runs use (the plugin's default
    # under --track-dir): the server creates its tables, so those runs find a warm store
    # without a warm-up run of their own. Server and embedded runs never write at once.
    sqlite_dir = bench.work / "track" / f"shared-{SQLITE_STORE}"
    sqlite_dir.mkdir(parents=True, exist_ok=True)
    server = bench.server = MlflowServer(bench.work / "mlflow-server",
                                         (sqlite_dir / "mlflow.db").resolve())
    progress(f"  starting mlflow server on {server.url}")
    server.start()
    bench.warm.add(SQLITE_STORE)
    try:
        if not bench.smoke:  # with --smoke, runs without the server go first, while it boots
            server.wait_ready()
        _mlflow_rows(bench, report, server)
    finally:
        server.stop()
        bench.server = None


SQLITE_STORE = "sqlite"


def _mlflow_rows(bench: Bench, report: Report, server: MlflowServer) -> None:
    """Cost per test of each way of logging the same results, start-up excluded: the
    plugin's from its runs at two sizes; the baselines' (one suite, three logging modes) from
    one run each minus the start-up of the suite in its cheapest mode at the small size."""
    plan = bench.plan
    small, n_big = plan.mlflow_small, plan.mlflow_n
    http = (("MLFLOW_TRACKING_URI", server.url),)

    def plugin(label: str, n: int, env: tuple[tuple[str, str], ...], store: str) -> Job:
        project = f"bench-{store or 'server'}"
        return Job(label, "returned", n, ("--track", "mlflow", "--track-project", project),
                   env, track_dir="shared" if store else "fresh", store=store,
                   count_requests=bool(env))

    def baseline(mode: str, n: int) -> Job:
        env = (*http, ("BENCH_MLFLOW_MODE", mode), ("BENCH_MLFLOW_EXPERIMENT", f"bench-{mode}"))
        return Job(f"MlflowClient {mode}", "baseline", n, ("-p", "no:insidellms"), env,
                   track_dir="none", count_requests=True)

    def off(n: int) -> Job:
        return Job("returned results, tracking off", "returned", n, track_dir="none")

    sizes = sorted({small, n_big, plan.per_value_n, plan.per_result_n} - {0})
    offs = dict(zip(sizes, bench.measure([off(n) for n in sizes])))
    for index, n in enumerate(sizes):
        report.row(f"3o{index}", "returned results, tracking off", offs[n])

    cost: dict[str, float] = {}
    requests: dict[str, float] = {}

    def plugin_row(row_id: str, low_job: Job | None, high_job: Job) -> tuple[Result, str]:
        if low_job is not None:
            low, high = bench.measure([low_job, high_job])
            startup = low.wall - offs[small].wall
            cost[row_id] = (high.wall - low.wall - (offs[n_big].wall - offs[small].wall)) / (
                n_big - small)
            note = f"start-up {startup:.2f} s; {cost[row_id] * 1e3:+.2f} ms per extra test"
            extra = high.requests - low.requests
        else:
            (high,) = bench.measure([high_job])
            cost[row_id] = (high.wall - offs[n_big].wall) / n_big
            note = f"{cost[row_id] * 1e3:+.2f} ms per test (start-up included)"
            extra = high.requests
        if high_job.count_requests:
            requests[row_id] = extra / (n_big - small)
            note += (f"; {high.requests} HTTP requests ({requests[row_id]:.3f} per "
                     f"{'extra ' if low_job else ''}test)")
        return high, note

    def over_http() -> tuple[Result, str]:
        server.wait_ready()
        return plugin_row("3a", plugin("plugin -> server", small, http, "") if small else None,
                          plugin("plugin -> server", n_big, http, ""))

    if not bench.smoke:  # the server made the tables of the shared store: it is warm
        http_row = over_http()
        store = SQLITE_STORE
    else:  # --smoke: a fresh store, measured while the server boots
        store = ""
    sqlite_row = plugin_row("3b", plugin("plugin -> sqlite", small, (), store) if small else None,
                            plugin("plugin -> sqlite", n_big, (), store))
    if bench.smoke:
        http_row = over_http()
    report.row("3a", "--track mlflow -> mlflow server (HTTP)", *http_row)
    report.row("3b", "--track mlflow -> embedded sqlite"
               + (" (warm store)" if store else " (new store: --smoke)"), *sqlite_row)

    modes = [("3c", "per-value", "baseline: log_metric/log_param per value (HTTP)",
              plan.per_value_n),
             ("3d", "per-result", "baseline: one log_batch per result (HTTP)", plan.per_result_n),
             ("3e", "max-batch", "baseline: maximal log_batch requests (HTTP)", n_big)]
    jobs = [baseline(mode, n) for _, mode, _, n in modes]
    if small:
        jobs.insert(0, baseline("max-batch", small))
    measured = bench.measure(jobs)
    startup = measured.pop(0) if small else None
    base = startup.wall - offs[small].wall if startup else 0.0
    base_requests = startup.requests if startup else 0
    report.row("3s", "baseline start-up: max-batch at the small N", startup,
               f"{base:.2f} s over tracking off; {base_requests} HTTP requests; subtracted "
               "from 3c-3e" if startup else "not measured (no small N): 3c-3e include it",
               n=small)
    for (row_id, _, what, n), result in zip(modes, measured):
        cost[row_id] = (result.wall - offs[n].wall - base) / n
        requests[row_id] = (result.requests - base_requests) / n
        note = (f"{cost[row_id] * 1e3:+.2f} ms per test; {result.requests} HTTP requests "
                f"({requests[row_id]:.3f} per test)")
        if n != n_big:
            projected = offs[n_big].wall + base + cost[row_id] * n_big
            note += f"; at N={n_big:,} that is {projected:.1f} s"
        report.row(row_id, what, result, note)

    ours = cost["3a"]
    for row_id, name, factor in (("3c", "per-value logging", 20),
                                 ("3d", "one request per result", 10)):
        ratio = cost[row_id] / ours if ours > 0 else float("inf")
        # No client sends the same data in fewer, fuller requests than 3e: the server's own
        # work per stored value caps the ratio any client can reach on this server.
        ceiling = cost[row_id] / cost["3e"] if cost["3e"] > 0 else float("inf")
        report.target(f"--track mlflow (HTTP) >= {factor}x faster than {name}", ratio >= factor,
                      f"{ratio:.1f}x per test ({cost[row_id] * 1e3:.2f} ms vs {ours * 1e3:.2f} "
                      f"ms); maximal batches reach {ceiling:.1f}x")
    ratio = ours / cost["3e"] if cost["3e"] > 0 else float("inf")
    report.target("--track mlflow (HTTP) within 1.5x of maximal log_batch requests",
                  ratio <= 1.5, f"{ratio:.2f}x per test ({ours * 1e3:.2f} ms vs "
                                f"{cost['3e'] * 1e3:.2f} ms)")
    report.target("HTTP requests grow far slower than tests", requests["3a"] <= 0.1,
                  f"{requests['3a']:.3f} requests per extra test; maximal batches "
                  f"{requests['3e']:.3f}, one per result {requests['3d']:.2f}, per value "
                  f"{requests['3c']:.1f}")


def section_backends(bench: Bench, report: Report) -> None:
    n = bench.plan.backends_n
    off, tensorboard, wandb = bench.measure([
        Job("returned results, tracking off", "returned", n, track_dir="none"),
        Job("--track tensorboard", "returned", n, ("--track", "tensorboard")),
        Job("--track wandb", "returned", n, ("--track", "wandb")),
    ])
    report.row("4a", "returned results, tracking off", off)
    report.row("4b", "--track tensorboard (tensorboardX)", tensorboard,
               overhead_note(tensorboard, off)[2])
    report.row("4c", "--track wandb (offline: the plugin's default without WANDB_API_KEY)",
               wandb, overhead_note(wandb, off)[2])


def section_xdist(bench: Bench, report: Report) -> None:
    # Tests that only build a result are too cheap to gain from xdist on two cores (sending
    # each report to the controller costs about as much as the test): these wait 1 ms for
    # their "model", as eval tests do.
    n = bench.plan.xdist_n
    kind = "returned" if bench.smoke else "latency"  # --smoke: reuse section 2's runs
    off0, off2, local0, local2 = bench.measure([
        Job("returned results, tracking off", kind, n, track_dir="none"),
        Job("-n 2, tracking off", kind, n, ("-n", "2"), track_dir="none"),
        Job("returned results, --track local", kind, n, ("--track", "local")),
        Job("-n 2, --track local", kind, n, ("-n", "2", "--track", "local")),
    ])
    speed_off, speed_local = off0.wall / off2.wall, local0.wall / local2.wall
    report.row("5a", "1 ms model latency per test, tracking off", off0)
    report.row("5b", "the same, -n 2, tracking off", off2, f"speed-up {speed_off:.2f}x over 5a")
    report.row("5c", "the same, --track local", local0, overhead_note(local0, off0)[2])
    report.row("5d", "the same, -n 2, --track local", local2,
               f"speed-up {speed_local:.2f}x over 5c; {overhead_note(local2, off2)[2]}")
    report.target("tracking keeps the xdist speed-up", speed_local >= 0.8 * speed_off
                  and speed_local > 1.0,
                  f"{speed_local:.2f}x tracked vs {speed_off:.2f}x untracked (at least 80% of "
                  "it, and above 1)")


def section_memory(bench: Bench, report: Report) -> None:
    extras = []
    for index, n in enumerate(bench.plan.memory_ns):
        # Peak RSS hardly varies between runs: sizes not measured by an earlier section run once.
        off, local = bench.measure([
            Job("returned results, tracking off", "returned", n, track_dir="none"),
            Job("returned results, --track local", "returned", n, ("--track", "local")),
        ], repeat=1 if n not in bench.plan.local_ns else None)
        extra = local.rss - off.rss
        extras.append((n, extra))
        report.row(f"6{'abcdefgh'[index]}", "--track local, peak RSS", local,
                   f"tracking off: {off.rss:.0f} MB; tracking adds {extra:+.1f} MB")
    (n0, e0), (n1, e1) = extras[0], extras[-1]
    per_1000 = (e1 - e0) / (n1 - n0) * 1000 if n1 != n0 else 0.0
    report.target("memory with tracking on is flat in N", per_1000 < 0.5,
                  f"tracking's extra memory {e0:+.1f} MB at N={n0:,}, {e1:+.1f} MB at "
                  f"N={n1:,} ({per_1000:+.2f} MB per 1,000 tests)")


# -- main -----------------------------------------------------------------------------------


def plan_setting(text: str) -> tuple[str, Any]:
    """``--set`` argument: a Plan field and its value (an int, or ints joined by commas)."""
    name, _, value = text.partition("=")
    fields = {f.name: f for f in dataclasses.fields(Plan)}
    if name not in fields:
        raise argparse.ArgumentTypeError(f"no plan field {name!r}; fields: {', '.join(fields)}")
    try:
        numbers = tuple(int(part) for part in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{name}: expected integers, got {value!r}") from None
    return name, numbers if "tuple" in str(fields[name].type) else numbers[0]


def versions() -> list[str]:
    found = []
    for dist in ("pytest", "pytest-xdist", "pytest-insidellms", "mlflow", "wandb",
                 "tensorboardX", "tensorboard"):
        try:
            found.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{dist} (not installed)")
    return found


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    ram = "? GB"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GB"
    return f"{os.cpu_count()} cores, {ram} RAM, {model}, {platform.system()} {platform.release()}"


def git_commit() -> str:
    done = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=False)
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--",
                            "pytest_insidellms"], capture_output=True, text=True,
                           check=False).stdout.strip()
    return (done.stdout.strip() or "?") + (" (+ uncommitted changes)" if dirty else "")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller N, one run each")
    size.add_argument("--smoke", action="store_true", help="tiny N: check the script works")
    parser.add_argument("--only", action="append", choices=SECTIONS, metavar="SECTION",
                        help=f"run only this section (repeatable): {', '.join(SECTIONS)}")
    parser.add_argument("--repeat", type=int, help="runs per configuration (default 3; "
                                                   "--quick and --smoke: 1)")
    parser.add_argument("--modules", type=int, help="test modules per suite (default 20)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        type=plan_setting, help="override a size of the plan, e.g. "
                                                "--set mlflow_n=10000 or --set local_ns=1000,5000")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    plan = PLANS["smoke" if args.smoke else "quick" if args.quick else "default"]
    overrides = dict(args.set)
    if args.repeat:
        overrides["repeat"] = args.repeat
    if args.modules:
        overrides["modules"] = args.modules
    plan = dataclasses.replace(plan, **overrides)
    sections = [s for s in SECTIONS if not args.only or s in args.only]

    command = shlex.join([sys.executable, *sys.argv])
    header = [
        "pytest-insidellms benchmark",
        f"command: {command}",
        f"machine: {machine()}",
        f"python {platform.python_version()} ({sys.executable}); " + ", ".join(versions()),
        f"commit: {git_commit()}",
        f"plan: {plan}",
        "load average at start: " + " ".join(f"{x:.2f}" for x in os.getloadavg()),
    ]
    progress("\n".join(header))
    work = Path(tempfile.mkdtemp(prefix="insidellms-bench-"))
    bench = Bench(plan, work, smoke=args.smoke, keep=args.keep)
    report = Report()
    started = time.monotonic()
    functions = {"off": section_off, "local": section_local, "mlflow": section_mlflow,
                 "backends": section_backends, "xdist": section_xdist, "memory": section_memory}
    try:
        for name in sections:
            progress(f"== section {name} ({time.monotonic() - started:.0f} s)")
            functions[name](bench, report)
    finally:
        if bench.server is not None:
            bench.server.stop()
        if args.keep:
            progress(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    elapsed = time.monotonic() - started
    header.append("load average at end: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    header.append(f"total time: {elapsed:.0f} s, {bench.runs} pytest runs")
    print_report(header, report, plan, smoke=args.smoke)
    if args.json:
        args.json.write_text(json.dumps({
            "header": header,
            "rows": [{"id": r.id, "what": r.what, "n": r.n if r.n is not None else (
                r.result.n if r.result else None),
                      "wall": r.result.wall if r.result else None,
                      "cpu": r.result.cpu if r.result else None,
                      "rss_mb": r.result.rss if r.result else None,
                      "samples": [s.__dict__ for s in r.result.samples] if r.result else [],
                      "note": r.note} for r in report.rows],
            "targets": report.targets,
        }, indent=2))
    return 0


def print_report(header: list[str], report: Report, plan: Plan, smoke: bool) -> None:
    out = ["", *header, "",
           (f"Medians of {plan.repeat} run(s) per configuration; wall and CPU in seconds "
            "(CPU: user+sys of pytest and its workers), peak RSS in MB (largest process)."), "",
           "| id | configuration | N | wall s | CPU s | peak MB | notes |",
           "|---|---|---:|---:|---:|---:|---|"]
    out += [format_row(row) for row in report.rows]
    out += ["", "Targets" + (" (smoke sizes: verdicts mean nothing)" if smoke else "") + ":"]
    out += [f"  [{verdict}] {name}: {detail}" for name, verdict, detail in report.targets]
    for note in report.notes:
        out += ["", note]
    print("\n".join(out), flush=True)


if __name__ == "__main__":
    sys.exit(main())
