#!/usr/bin/env python
"""The library anchor workload, every backend, ours beside insideLLMs (see benchmarks/README.md).

Runs the fixed workload script (``anchor_workload.py``: one parent run, 10 nested module runs,
N ExperimentResults logged with ``log_experiment_result(result, prefix=f"t{i}/")``) once per
backend for this checkout and, with ``--ref-python``, for insideLLMs installed in another
interpreter, backend by backend and interleaved, so that machine load hits both alike. Prints
one table; ``--memory`` adds MLflow's memory growth after the tracker exists, for N = 500,
2000 and 8000.

    python benchmarks/anchor.py                                   # ours only
    python benchmarks/anchor.py --ref-python /tmp/venv-ref/bin/python
    python benchmarks/anchor.py --backends tensorboard,wandb --repeat 5
    python benchmarks/anchor.py --ref-python /tmp/venv-ref/bin/python --memory

insideLLMs sends one request per result and MLflow re-reads a run's params on each, so its
--memory runs at N=8000 take several minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WORKLOAD = ROOT / ".." / "shared" / "bench" / "anchor_workload.py"
BACKENDS = ("local", "mlflow-sqlite", "mlflow-http", "tensorboard", "wandb")
MEMORY_SIZES = (500, 2000, 8000)
MEMORY_MARK = "ANCHOR_MEMORY "

#: One measured MLflow run for --memory: RSS once the tracker and the parent run exist
#: (MLflow imported, store open), then the workload, then the peak. argv: workload, impl,
#: tracking URI, N.
MEMORY_CHILD = """
import importlib.util, json, sys, time
MARK = "ANCHOR_MEMORY "
spec = importlib.util.spec_from_file_location("anchor_workload", sys.argv[1])
aw = importlib.util.module_from_spec(spec)
spec.loader.exec_module(aw)
impl, uri, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
api = aw.load_impl(impl)
results = aw.build_results(api, n)
tracker = api.create_tracker("mlflow", tracking_uri=uri, experiment_name=f"memory-{time.time_ns()}")
tracker.start_run(run_name="anchor-session")
ready = aw.rss_now_kib()
started = time.perf_counter()
for k, (lo, hi) in enumerate(aw.module_bounds(n, 10)):
    tracker.start_run(run_name=f"module-{k:02d}", nested=True)
    for i in range(lo, hi):
        tracker.log_experiment_result(results[i], prefix=f"t{i}/")
    tracker.end_run()
tracker.end_run()
print(MARK + json.dumps({"ready_mib": ready / 1024, "peak_mib": aw.peak_rss_kib() / 1024,
                         "ms_per_result": 1000 * (time.perf_counter() - started) / n}), flush=True)
"""


def load_workload(path: Path) -> ModuleType:
    """The workload script as a module: its sqlite template and server helpers are reused."""
    spec = importlib.util.spec_from_file_location("anchor_workload", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load the anchor workload from {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def child_env(impl: str, workdir: Path, workload: ModuleType) -> dict[str, str]:
    env: dict[str, str] = workload.child_env(workdir)
    env.pop("PYTHONPATH", None)
    if impl == "ours":
        env["PYTHONPATH"] = str(ROOT)  # this checkout, whatever is installed
    return env


def run_anchor(python: str, impl: str, backend: str, args: argparse.Namespace,
               workload: ModuleType, workdir: Path) -> dict[str, Any]:
    """One workload invocation (``--repeat`` measured runs); its summary for ``backend``."""
    report = workdir / f"{impl}-{backend}.json"
    command = [python, str(args.workload), "--impl", impl, "--backend", backend,
               "-n", str(args.n), "--repeat", str(args.repeat), "--json", str(report)]
    print(f"$ {' '.join(command)}", file=sys.stderr, flush=True)
    done = subprocess.run(command, env=child_env(impl, workdir, workload), cwd=workdir,
                          capture_output=True, text=True)
    if done.returncode != 0 or not report.exists():
        return {"error": (done.stderr or done.stdout)[-500:]}
    summary: dict[str, Any] = json.loads(report.read_text())["backends"][0]["summary"]
    return summary


def median(summary: dict[str, Any], key: str) -> float | None:
    value = summary.get(key)
    return None if not value else float(value[0])


def backend_facts(summary: dict[str, Any]) -> str:
    """What reached the backend, in the workload's own read-back words."""
    readback = summary.get("readback") or {}
    if "scalar_events" in readback:
        return f"{readback['scalar_events']} scalar events, {readback['event_dirs']} run dirs"
    if "records" in readback:
        records = readback["records"]
        return f"{records.get('history', 0)} history, {records.get('config', 0)} config records"
    if "client_requests" in summary:
        return f"{median(summary, 'client_requests'):.0f} HTTP requests"
    if "runs" in readback:
        return f"{readback['runs']} runs, {readback.get('metric_keys')} metric keys"
    return f"{readback.get('files', '?')} files"


def cell(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def without_setup(summary: dict[str, Any], n: int) -> float | None:
    """ms per result after the setup (create_tracker and the first start_run: where our
    trackers import their SDK, which insideLLMs imports with itself, outside the timing)."""
    total, setup = median(summary, "total_s"), median(summary, "setup_s")
    return None if total is None or setup is None else 1000 * (total - setup) / n


def ratio(ours: float | None, ref: float | None) -> str:
    return f"{ours / ref:.2f}x" if ours and ref else "-"


def anchor_table(rows: list[tuple[str, dict[str, Any], dict[str, Any] | None]], n: int) -> str:
    lines = [
        "| backend | ms/result ours | insideLLMs | ratio | without setup: ours | insideLLMs "
        "| ratio | CPU s ours | insideLLMs | RSS growth MiB ours | insideLLMs | reached the "
        "backend: ours | insideLLMs |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for backend, ours, ref in rows:
        ref = ref or {}
        ours_ms, ref_ms = median(ours, "per_result_ms"), median(ref, "per_result_ms")
        ours_net, ref_net = without_setup(ours, n), without_setup(ref, n)
        lines.append(
            f"| {backend} | {cell(ours_ms)} | {cell(ref_ms)} | {ratio(ours_ms, ref_ms)} | "
            f"{cell(ours_net)} | {cell(ref_net)} | {ratio(ours_net, ref_net)} | "
            f"{cell(median(ours, 'cpu_s'), 2)} | {cell(median(ref, 'cpu_s'), 2)} | "
            f"{cell(median(ours, 'rss_growth_mib'), 1)} | "
            f"{cell(median(ref, 'rss_growth_mib'), 1)} | "
            f"{backend_facts(ours) if 'error' not in ours else ours['error']} | "
            f"{backend_facts(ref) if ref and 'error' not in ref else ref.get('error', '-')} |"
        )
    return "\n".join(lines)


def memory_run(python: str, impl: str, uri: str, n: int, args: argparse.Namespace,
               workload: ModuleType, workdir: Path) -> dict[str, Any]:
    done = subprocess.run([python, "-c", MEMORY_CHILD, str(args.workload), impl, uri, str(n)],
                          env=child_env(impl, workdir, workload), cwd=workdir,
                          capture_output=True, text=True)
    # insideLLMs leaves an MLflow fluent run open, whose end at exit prints to stdout.
    lines = [line for line in done.stdout.splitlines() if line.startswith(MEMORY_MARK)]
    if not lines:
        return {"error": done.stderr[-300:] or f"exit code {done.returncode}"}
    result: dict[str, Any] = json.loads(lines[-1][len(MEMORY_MARK):])
    return result


def memory_table(args: argparse.Namespace, workload: ModuleType, base: Path) -> str:
    """RSS growth once the tracker exists (MLflow imported, store open), sqlite and HTTP."""
    impls = [("ours", sys.executable, args.memory_sizes)] + (
        [("insidellms", args.ref_python, args.ref_memory_sizes or args.memory_sizes)]
        if args.ref_python else [])
    template, _ = workload.make_sqlite_template(base)
    server = workload.MlflowServer(base / "memory")
    server.start()
    lines = ["| store | N | " + " | ".join(
        f"{impl} growth MiB (ms/result)" for impl, _, _ in impls) + " |",
        "|---|---|" + "---|" * len(impls)]
    try:
        for store in ("sqlite", "http"):
            for n in args.memory_sizes:
                cells = []
                for impl, python, sizes in impls:
                    if n not in sizes:
                        cells.append("not run")
                        continue
                    workdir = Path(tempfile.mkdtemp(dir=base))
                    uri = server.uri
                    if store == "sqlite":
                        shutil.copy(template, workdir / "mlflow.db")
                        uri = f"sqlite:///{workdir / 'mlflow.db'}"
                    print(f"memory: {impl} {store} N={n}", file=sys.stderr, flush=True)
                    out = memory_run(python, impl, uri, n, args, workload, workdir)
                    cells.append(out["error"][-60:] if "error" in out else
                                 f"+{out['peak_mib'] - out['ready_mib']:.1f} "
                                 f"({out['ms_per_result']:.2f})")
                lines.append(f"| {store} | {n} | " + " | ".join(cells) + " |")
    finally:
        server.stop()
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", type=Path, default=DEFAULT_WORKLOAD,
                        help="the anchor workload script (default: %(default)s)")
    parser.add_argument("--ref-python", help="an interpreter with insideLLMs installed")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--memory", action="store_true",
                        help="also MLflow's RSS growth at each of --memory-sizes")
    parser.add_argument("--memory-sizes", default=",".join(map(str, MEMORY_SIZES)),
                        type=lambda text: [int(n) for n in text.split(",")],
                        help="N for --memory (default: %(default)s)")
    parser.add_argument("--ref-memory-sizes", type=lambda text: [int(n) for n in text.split(",")],
                        help="N for insideLLMs' --memory runs (default: --memory-sizes)")
    parser.add_argument("--json", type=Path, help="write every summary to this file")
    args = parser.parse_args(argv)
    args.workload = args.workload.resolve()
    if not args.workload.is_file():
        raise SystemExit(f"no anchor workload at {args.workload} (use --workload)")
    workload = load_workload(args.workload)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    base = Path(tempfile.mkdtemp(prefix="anchor-bench-"))
    rows: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
    try:
        for backend in backends:
            ours = run_anchor(sys.executable, "ours", backend, args, workload, base)
            ref = (run_anchor(args.ref_python, "insidellms", backend, args, workload, base)
                   if args.ref_python else None)
            rows.append((backend, ours, ref))
        cpu = os.cpu_count()
        print(f"\nmachine: {platform.platform()}, {cpu} CPUs, Python {platform.python_version()};"
              f" N={args.n}, {args.repeat} runs each, medians\n")
        if rows:
            print(anchor_table(rows, args.n))
        if args.memory:
            print("\nMLflow: RSS growth from the tracker's first run being open to the peak\n")
            print(memory_table(args, workload, base))
        if args.json:
            args.json.write_text(json.dumps(
                [{"backend": b, "ours": o, "insidellms": r} for b, o, r in rows],
                indent=2, default=str) + "\n")
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(base)
    return 0


if __name__ == "__main__":
    sys.exit(main())
