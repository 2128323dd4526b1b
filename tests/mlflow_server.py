"""A real ``mlflow server`` on 127.0.0.1 for tests.

``MlflowServer(root)`` runs the server on a free port with its sqlite store and artifacts under
``root``, in its own process group (the server spawns uvicorn workers: killing the group
stops them all). ``start()`` returns at once and ``wait_ready()`` blocks until ``/health``
answers (7-10 s from cold), so a test module can start the server early and do other work
meanwhile. As a context manager it starts, waits and stops.

``mlflow_server_fixture(scope)`` builds a pytest fixture yielding a *started* server; call
``wait_ready()`` (it returns the URL) before talking to it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, final

import pytest

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@final
class MlflowServer:
    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = Path(root)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.store_uri = f"sqlite:///{(self.root / 'mlflow.db').as_posix()}"
        self.artifacts = self.root / "artifacts"
        self.log_path = self.root / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._ready = False

    def start(self) -> None:
        """Launch the server without waiting for it."""
        if self.process is not None:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
        # Our -W error would make the server die on its own dependencies' deprecations.
        env.update(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", MLFLOW_DISABLE_TELEMETRY="true")
        command = [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", self.store_uri,
            "--artifacts-destination", str(self.artifacts),
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
        ]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, cwd=self.root, start_new_session=True,
            )

    def wait_ready(self, timeout: float = 120.0) -> str:
        """Block until ``/health`` answers OK; return the server's URL."""
        if self._ready:
            return self.url
        self.start()
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"mlflow server exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                with _NO_PROXY.open(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        self._ready = True
                        return self.url
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"mlflow server not ready after {timeout} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Stop the server and every process it started."""
        process, self.process = self.process, None
        self._ready = False
        if process is None or process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                return
            try:
                process.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # The group may outlive its leader by a moment (uvicorn's worker).
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> MlflowServer:
        self.wait_ready()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def mlflow_server_fixture(scope: Any = "module") -> Callable[..., Iterator[MlflowServer]]:
    """A fixture yielding a started (not yet ready) server under a fresh temp directory."""

    @pytest.fixture(scope=scope)
    def fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
        server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
        server.start()
        try:
            yield server
        finally:
            server.stop()

    return fixture


def experiment_id(client: Any, name: str) -> str:
    """The id of MLflow experiment ``name``, which must exist."""
    experiment = client.get_experiment_by_name(name)
    assert experiment is not None, f"no MLflow experiment {name!r}"
    return str(experiment.experiment_id)
