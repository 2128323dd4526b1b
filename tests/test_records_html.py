"""report.html: self-contained, escaped, and rendered by a real headless Chromium.

The browser is Debian's ``chromium``, driven over the DevTools protocol on a pipe
(``--remote-debugging-pipe``): the page's own network requests are read from its Network
domain, so the browser's background traffic does not blur the check, and all traffic goes to
a closed local port so nothing leaves the machine whatever the page asks for. A test feeds a
page with an external image to prove the check sees one.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import queue
import re
import shutil
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from records_cases import QA, qa_case, session, suite
from test_records_summary import trial_cases

from pytest_insidellms.records import build_records, build_summary, render_report, write_records

Message = dict[str, Any]


class Browser:
    """Headless Chromium on a DevTools pipe: fd 3 carries commands in, fd 4 events out."""

    def __init__(self, executable: str, profile: Path) -> None:
        commands_in, self._commands = os.pipe()
        self._events, events_out = os.pipe()

        def wire_pipes() -> None:  # runs in the child, before fds outside pass_fds close
            os.dup2(commands_in, 3)
            os.dup2(events_out, 4)

        self.process = subprocess.Popen(
            [executable, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions",
             # Every connection to a closed port: nothing the page asks for leaves the host.
             "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
             f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"],
            pass_fds=(3, 4), preexec_fn=wire_pipes,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(commands_in)
        os.close(events_out)
        self._inbox: queue.Queue[Message | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._next_id = 0
        self.events: list[Message] = []

    def _read(self) -> None:
        pending = b""
        with os.fdopen(self._events, "rb", buffering=0) as stream:
            while chunk := stream.read(1 << 16):
                pending += chunk
                *messages, pending = pending.split(b"\0")
                for message in messages:
                    self._inbox.put(json.loads(message))
        self._inbox.put(None)

    def call(self, method: str, params: Message | None = None, session: str | None = None,
             timeout: float = 30.0) -> Message:
        self._next_id += 1
        command: Message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            command["sessionId"] = session
        os.write(self._commands, json.dumps(command).encode() + b"\0")
        reply = self._wait(lambda m: m.get("id") == command["id"], timeout)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        result: Message = reply.get("result", {})
        return result

    def wait_event(self, method: str, timeout: float = 30.0) -> Message:
        for event in self.events:
            if event.get("method") == method:
                return event
        return self._wait(lambda m: m.get("method") == method, timeout)

    def _wait(self, wanted: Callable[[Message], bool], timeout: float) -> Message:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from chromium")
            message = self._inbox.get(timeout=left)
            if message is None:
                raise RuntimeError("chromium closed its DevTools pipe")
            if "method" in message:
                self.events.append(message)
            if wanted(message):
                return message

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._commands)


@dataclasses.dataclass
class Rendered:
    text: str  # document.body.innerText: what a reader sees (CSS applied)
    source_text: str  # textContent: everything, closed <details> included
    scripts: int
    requests: list[str]  # every URL the page asked for, itself excluded
    screenshot: bytes


def render(browser: Browser, page: Path) -> Rendered:
    browser.events.clear()
    target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.call("Target.attachToTarget",
                           {"targetId": target, "flatten": True})["sessionId"]
    browser.call("Network.enable", session=session)
    browser.call("Page.enable", session=session)
    browser.call("Emulation.setDeviceMetricsOverride",
                 {"width": 1400, "height": 1000, "deviceScaleFactor": 1, "mobile": False},
                 session=session)
    url = page.as_uri()
    browser.call("Page.navigate", {"url": url}, session=session)
    browser.wait_event("Page.loadEventFired")
    _settle(browser)

    def evaluate(expression: str) -> Any:
        reply = browser.call("Runtime.evaluate", {"expression": expression,
                                                  "returnByValue": True}, session=session)
        return reply["result"].get("value")

    height = evaluate("document.documentElement.scrollHeight")
    shot = browser.call("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": 1400, "height": height, "scale": 1}},
        session=session)
    requests = [e["params"]["request"]["url"] for e in browser.events
                if e.get("method") == "Network.requestWillBeSent"
                and e["params"]["request"]["url"] != url]
    rendered = Rendered(evaluate("document.body.innerText"),
                        evaluate("document.body.textContent"),
                        evaluate("document.querySelectorAll('script').length"), requests,
                        base64.b64decode(shot["data"]))
    browser.call("Target.closeTarget", {"targetId": target})
    return rendered


def _settle(browser: Browser, quiet: float = 0.3, limit: float = 10.0) -> None:
    """Wait until every request the page started has finished or failed."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        started = {e["params"]["requestId"] for e in browser.events
                   if e.get("method") == "Network.requestWillBeSent"}
        ended = {e["params"]["requestId"] for e in browser.events
                 if e.get("method") in ("Network.loadingFinished", "Network.loadingFailed")}
        try:
            browser._wait(lambda m: False, quiet)
        except (TimeoutError, queue.Empty):
            if started <= ended:
                return


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.fail("report.html is tested in a real browser: install Debian's chromium "
                    "package (apt-get install chromium)")
    running = Browser(executable, tmp_path_factory.mktemp("chromium-profile"))
    yield running
    running.close()


def hostile_suite() -> list[Any]:
    cases = suite()
    cases[1] = dataclasses.replace(
        cases[1], error_type="ValueError<b>",
        error="E   ValueError: <script>alert('x')</script> see https://example.com/a.png "
              "<img src=\"http://evil.example/pixel.png\"> & done")
    return cases


def report_of(tmp_path: Path, cases: list[Any] | None = None,
              comparison_html: str | None = None) -> Path:
    # Without q1..q4, each of whose single attempt would cap k at 1 for the experiment.
    cases = cases if cases is not None else suite()[4:] + trial_cases()
    written = write_records(tmp_path, session(cases), cases, comparison_html=comparison_html)
    return written.directory / "report.html"


# -- static checks ----------------------------------------------------------------------------


def test_the_report_references_no_resource_at_all(tmp_path: Path) -> None:
    html = report_of(tmp_path).read_text()
    assert "<script" not in html.lower()
    for reference in ("http://", "https://", "//", "url(", "@import", "src=", "href=",
                      "<link", "<iframe", "<object", "<embed"):
        assert reference not in html, reference
    assert "default-src 'none'" in html  # the browser refuses fetches even if one sneaks in


def test_values_from_the_records_are_escaped(tmp_path: Path) -> None:
    html = report_of(tmp_path, hostile_suite()).read_text()
    assert "<script" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert "ValueError&lt;b&gt;" in html
    assert "<img" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)


def test_the_comparison_section_is_a_placeholder_until_given(tmp_path: Path) -> None:
    summary = build_summary(build_records(session(suite()), suite()))
    records = build_records(session(suite()), suite())
    empty = render_report(summary, records)
    assert 'id="comparison"' in empty and "No baseline comparison for this run." in empty
    filled = render_report(summary, records,
                           comparison_html="<table><tr><td>2 regressions</td></tr></table>")
    assert "<td>2 regressions</td>" in filled and "No baseline comparison" not in filled


def test_the_report_is_a_pure_function_of_summary_and_records() -> None:
    records = build_records(session(suite()), suite())
    summary = build_summary(records)
    assert render_report(summary, records) == render_report(summary, records)


# -- in the browser ---------------------------------------------------------------------------


def test_the_browser_sees_an_external_resource_when_there_is_one(browser: Browser,
                                                                 tmp_path: Path) -> None:
    page = tmp_path / "leaky.html"
    page.write_text('<!DOCTYPE html><html><body><p>leaky</p>'
                    '<img src="http://example.invalid/pixel.png"></body></html>')
    rendered = render(browser, page)
    assert rendered.text.strip() == "leaky"
    assert rendered.requests == ["http://example.invalid/pixel.png"]


def test_the_report_renders_its_content_in_chromium_with_no_request(browser: Browser,
                                                                    tmp_path: Path) -> None:
    rendered = render(browser, report_of(tmp_path))
    assert rendered.requests == []
    assert rendered.scripts == 0
    text = rendered.text
    assert "demo-evals: eval report" in text
    for label in ("PASSED", "FAILED", "SKIPPED", "ERROR", "XFAILED", "XPASSED"):
        assert label in text  # the outcome tiles (upper-cased by CSS)
    assert re.search(r"Pass rate \d+\.\d% \[\d+\.\d%, \d+\.\d%\] of \d+ cases that ran", text)
    assert "qa_accuracy" in text and "arithmetic" in text and "plain tests" in text
    assert "Failing cases" in text and "AssertionError" in text
    assert "FileNotFoundError" in text and f"{QA}::test_answer[broken]#trial1" in text
    assert "Repeated trials" in text and "pass@1" in text and "pass^4" in text
    assert "Flaky cases (2)" in text and f"{QA}::test_answer[one_skip]" in text
    assert "timeout, in a passed test" in text  # a result failed inside a passing test
    assert "Baseline comparison" in text and "No baseline comparison for this run." in text
    (tmp_path / "report.png").write_bytes(rendered.screenshot)
    assert rendered.screenshot[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", rendered.screenshot[16:24])
    assert width == 1400 and height > 1000  # the whole page, not just the first screen


def test_hostile_text_stays_text_in_the_browser(browser: Browser, tmp_path: Path) -> None:
    rendered = render(browser, report_of(tmp_path, hostile_suite()))
    assert rendered.scripts == 0
    assert rendered.requests == []
    assert "<script>alert('x')</script>" in rendered.source_text
    assert '<img src="http://evil.example/pixel.png">' in rendered.source_text
    assert "ValueError<b>" in rendered.text


def test_the_failing_case_details_are_one_click_away(browser: Browser, tmp_path: Path) -> None:
    cases = [qa_case("q1", "failed", error_type="AssertionError",
                     error="E   assert 'five' == '5'")]
    rendered = render(browser, report_of(tmp_path, cases))
    assert "details" in rendered.text
    assert "assert 'five' == '5'" not in rendered.text  # folded until opened
    assert "assert 'five' == '5'" in rendered.source_text
