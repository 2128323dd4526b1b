"""Tracking never runs on a test's clock: with a tracking server that answers slowly,
pytest-timeout blames no test and pytest does not crash (issue 11, item 3)."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator

import pytest

SUITE = """
import pytest

@pytest.mark.parametrize("case", range(3))
def test_instant(tracker, case):
    tracker.log_metrics({"case": float(case)})
"""


class _Slow(http.server.BaseHTTPRequestHandler):
    def _answer(self) -> None:
        time.sleep(1.5)  # every request takes longer than the tests' timeout
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def slow_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("method", ["signal", "thread"])
def test_a_slow_tracking_server_is_never_charged_to_a_test_under_pytest_timeout(
    pytester: pytest.Pytester, slow_server: str, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", slow_server)
    pytester.makepyfile(test_fast=SUITE)
    result = pytester.runpytest_subprocess(
        "--track", "local,mlflow", "--timeout", "1", f"--timeout_method={method}",
        "-W", "ignore::pytest.PytestWarning")
    output = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in output and "Timeout" not in output
    result.assert_outcomes(passed=3)
    assert "replay with: python -m pytest_insidellms sync" in output  # all of it spooled
