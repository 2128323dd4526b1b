"""TrackingConfig: defaults, YAML loading and errors that say which file and which key."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from pytest_insidellms import TrackingConfig


def write(tmp_path: Path, text: str, name: str = "tracking.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_defaults_match_the_spec() -> None:
    config = TrackingConfig()
    assert (config.project, config.experiment_name, config.tags, config.notes) == (
        "insideLLMs", None, [], None)
    assert (config.log_artifacts, config.log_code, config.auto_log_metrics) == (True, False, True)
    assert (config.redact_patterns, config.backends) == ([], {})


def test_positional_order_matches_insidellms() -> None:
    config = TrackingConfig("p", "e", ["t"], "n", False, True, False)
    assert (config.project, config.experiment_name, config.tags, config.notes,
            config.log_artifacts, config.log_code, config.auto_log_metrics) == (
        "p", "e", ["t"], "n", False, True, False)


def test_list_defaults_are_not_shared() -> None:
    a, b = TrackingConfig(), TrackingConfig()
    a.tags.append("x")
    assert b.tags == []


def test_from_yaml_reads_every_field_and_backend_sections(tmp_path: Path) -> None:
    path = write(tmp_path, """
        project: my-project
        experiment_name: nightly
        tags: [llm, eval]
        notes: smoke run
        log_artifacts: false
        log_code: true
        auto_log_metrics: false
        redact_patterns: ["internal-[0-9]+"]
        mlflow:
          tracking_uri: http://127.0.0.1:5000
        wandb:
          entity: my-team
          mode: offline
        tensorboard:
        backends:
          local:
            output_dir: ./runs
    """)
    config = TrackingConfig.from_yaml(path)
    assert config == TrackingConfig(
        project="my-project", experiment_name="nightly", tags=["llm", "eval"], notes="smoke run",
        log_artifacts=False, log_code=True, auto_log_metrics=False,
        redact_patterns=["internal-[0-9]+"],
        backends={"mlflow": {"tracking_uri": "http://127.0.0.1:5000"},
                  "wandb": {"entity": "my-team", "mode": "offline"},
                  "tensorboard": {}, "local": {"output_dir": "./runs"}},
    )


def test_from_yaml_accepts_a_path_string_and_comma_separated_tags(tmp_path: Path) -> None:
    path = write(tmp_path, "tags: 'a, b ,c'\n")
    assert TrackingConfig.from_yaml(str(path)).tags == ["a", "b", "c"]


def test_an_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    assert TrackingConfig.from_yaml(write(tmp_path, "")) == TrackingConfig()


def test_malformed_yaml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "project: [unclosed\n", name="broken.yaml")
    with pytest.raises(ValueError, match=re.escape(f"{path}: not valid YAML")):
        TrackingConfig.from_yaml(path)


def test_unknown_key_names_the_file_the_key_and_the_valid_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "project: p\nprojcet: typo\n", name="typo.yaml")
    with pytest.raises(ValueError, match=re.escape(f"{path}: unknown key 'projcet'")) as raised:
        TrackingConfig.from_yaml(path)
    assert "valid keys:" in str(raised.value) and "experiment_name" in str(raised.value)
    assert "mlflow" in str(raised.value)


def test_backends_may_hold_sections_for_custom_backends(tmp_path: Path) -> None:
    # A pytest_insidellms_make_tracker hook may add backends; their settings live here.
    path = write(tmp_path, "backends:\n  langfuse:\n    host: http://127.0.0.1:3000\n")
    assert TrackingConfig.from_yaml(path).backends == {"langfuse": {"host": "http://127.0.0.1:3000"}}


@pytest.mark.parametrize(("text", "key"), [
    ("project: 3\n", "project"),
    ("project: ''\n", "project"),
    ("project: null\n", "project"),
    ("experiment_name: [a]\n", "experiment_name"),
    ("log_artifacts: 'yes please'\n", "log_artifacts"),
    ("log_code: 1\n", "log_code"),
    ("tags: [1, 2]\n", "tags"),
    ("tags: {a: b}\n", "tags"),
    ("mlflow: http://x\n", "mlflow"),
    ("backends: [mlflow]\n", "backends"),
])
def test_wrong_types_name_the_file_and_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path, text, name="types.yaml")
    with pytest.raises(TypeError, match=re.escape(str(path))) as raised:
        TrackingConfig.from_yaml(path)
    assert repr(key) in str(raised.value)


def test_a_top_level_list_is_rejected_naming_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "- project\n- other\n", name="list.yaml")
    with pytest.raises(TypeError, match=re.escape(f"{path}: expected a mapping")):
        TrackingConfig.from_yaml(path)


def test_a_missing_file_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        TrackingConfig.from_yaml(tmp_path / "absent.yaml")


def test_from_dict_names_its_source(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="pyproject: unknown key 'bogus'"):
        TrackingConfig.from_dict({"bogus": 1}, source="pyproject")
    data: dict[str, Any] = {"project": "p", "tags": ["x"]}
    config = TrackingConfig.from_dict(data)
    config.tags.append("y")
    assert data["tags"] == ["x"]  # the input mapping is copied, not adopted


# -- backend sections are checked against the backend's constructor -----------------------------


@pytest.mark.parametrize("text", [
    "mlflow:\n  trackinguri: http://127.0.0.1:5000\n",
    "backends:\n  mlflow:\n    trackinguri: http://127.0.0.1:5000\n",
])
def test_a_typo_in_a_backend_section_names_the_file_the_key_and_the_valid_keys(
    tmp_path: Path, text: str
) -> None:
    path = write(tmp_path, text, name="typo.yaml")
    with pytest.raises(ValueError) as raised:
        TrackingConfig.from_yaml(path)
    assert str(raised.value) == (
        f"{path}: backend 'mlflow': unknown key 'trackinguri'; valid keys: artifact_location, "
        "experiment_name, flush_interval, tracking_uri")


@pytest.mark.parametrize(("text", "message"), [
    ("tensorboard:\n  flush_secs: '5'\n", "backend 'tensorboard': 'flush_secs' must be a number"),
    ("wandb:\n  finish_timeout: [30]\n", "backend 'wandb': 'finish_timeout' must be a number"),
    ("local:\n  output_dir: 7\n", "backend 'local': 'output_dir' must be a path, got 7"),
    ("mlflow:\n  tracking_uri: true\n", "backend 'mlflow': 'tracking_uri' must be a string or null"),
])
def test_a_wrong_type_in_a_backend_section_names_the_file_and_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text, name="types.yaml")
    with pytest.raises(TypeError, match=re.escape(f"{path}: {message}")):
        TrackingConfig.from_yaml(path)


def test_backend_sections_accept_what_the_constructors_accept(tmp_path: Path) -> None:
    path = write(tmp_path, """
        tensorboard: {flush_secs: 5, writer: tensorboardX}
        mlflow: {tracking_uri: null, flush_interval: 0.5}
        wandb: {entity: team, job_types: [session, module], settings: {console: "off"}}
    """)
    assert TrackingConfig.from_yaml(path).backends == {
        "tensorboard": {"flush_secs": 5, "writer": "tensorboardX"},
        "mlflow": {"tracking_uri": None, "flush_interval": 0.5},
        "wandb": {"entity": "team", "job_types": ["session", "module"],
                  "settings": {"console": "off"}}}


@pytest.mark.parametrize("pattern", ["(unclosed", "[a-", "*x", "a)|(b", "(?i)internal-[0-9]+"])
def test_an_invalid_redact_pattern_names_the_file_the_key_and_the_pattern(
    tmp_path: Path, pattern: str
) -> None:
    path = write(tmp_path, f"redact_patterns: ['ok-[0-9]+', {pattern!r}]\n", name="r.yaml")
    with pytest.raises(ValueError) as raised:
        TrackingConfig.from_yaml(path)
    assert str(raised.value).startswith(
        f"{path}: 'redact_patterns': {pattern!r} is not a valid regular expression: ")
