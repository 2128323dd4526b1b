"""Secrets never reach a backend: secret-named params and credential-shaped text are redacted,
while ordinary names and text are left alone."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pytest_insidellms import LocalFileTracker, TrackingConfig
from pytest_insidellms.experiment_tracking.redaction import (
    REDACTED,
    is_secret_name,
    redact_text,
    redact_value,
)

SECRET_NAMES = [
    "api_key", "OPENAI_API_KEY", "apiKey", "x-api-key", "auth_token", "access_token",
    "hf_token", "token", "password", "db_password", "passwd", "Authorization", "client_secret",
    "secret", "aws_secret_access_key", "private_key", "openai_key", "session_cookie",
    "credentials", "github_pat", "sentry_dsn", "ANTHROPIC_API_KEY", "authToken",
]
ORDINARY_NAMES = [
    "max_tokens", "total_tokens", "token_count", "token_limit", "max_token_count", "sort_key",
    "cache_key", "input_key", "label_key", "model_name", "key", "tokenizer", "temperature",
    "author", "monkey_patch", "passage", "keyboard_layout", "primary_key", "num_tokens",
]

FAKE_SECRETS = {
    "openai": "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0K1l2",
    "anthropic": "sk-ant-" + "api03-abcdefghijklmnopqrstu",
    "github": "ghp_" + "abcdefghijklmnopqrstuvwxyz0123456789",
    "github_pat": "github_pat_" + "11ABCDEFG0123456789_abcdefghijkl",
    "gitlab": "glpat-" + "abcdefghijklmnopqrstu",
    "slack": "xoxb-" + "123456789012-abcdefghij",
    "aws": "AKIA" + "IOSFODNN7EXAMPLE",
    "google": "AIza" + "SyA1234567890abcdefghijklmnopqrstuv",
    "huggingface": "hf_" + "abcdefghijklmnopqrstuvwxyzABCD",
    "jwt": "eyJhbGciOiJIUzI1NiJ9" + ".eyJzdWIiOiIxMjM0NTY3ODkwIn0"
           ".dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "bearer": "Bearer " + "abcdef0123456789abcdef",
    "basic": "Basic " + "dXNlcjpwYXNzd29yZA==",
    "pem": "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----",
}
ORDINARY_TEXT = [
    "risk-assessment-benchmark-v2",
    "tests basic multiplication/division and Basic Arithmetic",
    "gpt-4-turbo-2024-04-09",
    "http://127.0.0.1:5000/#/experiments",
    "mlflow+https://user@host/path",
    "task-0123456789abcdefghij",
    "graph_abcdefghijklmnopqrstuvwx",
    "The bearer of bad news",
]


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_secret_names_are_recognised(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ORDINARY_NAMES)
def test_ordinary_names_are_not_redacted(name: str) -> None:
    assert not is_secret_name(name)
    assert redact_value({name: "value-1"}) == {name: "value-1"}


@pytest.mark.parametrize("kind", list(FAKE_SECRETS))
def test_credential_formats_are_redacted_inside_text(kind: str) -> None:
    secret = FAKE_SECRETS[kind]
    redacted = redact_text(f"before {secret} after")
    assert secret not in redacted
    assert redacted.startswith("before ") and redacted.endswith(" after")
    assert REDACTED in redacted


def test_url_passwords_are_redacted_but_the_rest_of_the_url_kept() -> None:
    assert redact_text("postgresql://admin:hunter2@db.internal:5432/evals") == (
        f"postgresql://admin:{REDACTED}@db.internal:5432/evals")


@pytest.mark.parametrize("text", ORDINARY_TEXT)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact_text(text) == text


def test_secret_names_are_redacted_at_any_depth_and_empty_values_kept() -> None:
    params = {"client": {"api_key": "abc", "timeout": 3, "nested": [{"password": "pw"}]},
              "token": "", "auth_token": None, "model": "gpt-4"}
    assert redact_value(params) == {
        "client": {"api_key": REDACTED, "timeout": 3, "nested": [{"password": REDACTED}]},
        "token": "", "auth_token": None, "model": "gpt-4"}


def test_extra_patterns_come_from_the_config(tmp_path: Path) -> None:
    tracker = LocalFileTracker(tmp_path, TrackingConfig(redact_patterns=[r"internal-\d{4}"]))
    run_id = tracker.start_run("r")
    tracker.log_params({"endpoint": "https://internal-1234.corp/v1"})
    tracker.end_run()
    assert tracker.load_run(run_id)["params"] == {"endpoint": f"https://{REDACTED}.corp/v1"}


def test_no_secret_reaches_any_file_of_a_local_run(tmp_path: Path) -> None:
    key = FAKE_SECRETS["openai"]
    config = TrackingConfig(tags=[f"key={key}"], notes=f"used {FAKE_SECRETS['bearer']}")
    tracker = LocalFileTracker(tmp_path / "out", config)
    run_id = tracker.start_run("r")
    tracker.log_params({
        "OPENAI_API_KEY": "plain-looking-value", "headers": {"Authorization": "xyz"},
        "cmd": f"curl -H 'x: {key}'", "max_tokens": 256, "sort_key": "score",
        "db": "postgres://u:topsecretpw@h/db",
    })
    tracker.end_run()
    loaded = tracker.load_run(run_id)
    assert loaded["params"] == {
        "OPENAI_API_KEY": REDACTED, "headers": {"Authorization": REDACTED},
        "cmd": f"curl -H 'x: {REDACTED}'", "max_tokens": 256, "sort_key": "score",
        "db": f"postgres://u:{REDACTED}@h/db",
    }
    assert loaded["metadata"]["tags"] == [f"key={REDACTED}"]
    assert loaded["metadata"]["notes"] == f"used {REDACTED}"
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            for secret in (key, "plain-looking-value", "topsecretpw", "abcdef0123456789"):
                assert secret not in text, f"{secret} leaked into {path}"


def test_metrics_are_never_redacted(tmp_path: Path) -> None:
    tracker = LocalFileTracker(tmp_path)
    run_id = tracker.start_run("r")
    tracker.log_metrics({"token_errors": 2, "api_key_failures": 1})
    tracker.end_run()
    assert tracker.load_run(run_id)["metrics"][0]["metrics"] == {
        "token_errors": 2.0, "api_key_failures": 1.0}


@pytest.mark.parametrize("text", [
    "x" * 1_000_000,
    "x" * 500_000 + "://" + "y" * 500_000,
    "a://b:" * 100_000,
    "Bearer " * 100_000,
], ids=["one long word", "a scheme mid-word", "repeated url starts", "repeated bearer"])
def test_a_megabyte_of_adversarial_text_is_redacted_in_linear_time(text: str) -> None:
    # A guard against catastrophic backtracking (the URL pattern once took hours on 1 MB),
    # not a speed target: linear matching takes well under a second here.
    started = time.perf_counter()
    redact_text(text)
    assert time.perf_counter() - started < 10
