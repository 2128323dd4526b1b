"""Read TensorBoard runs back through tensorboard's own reader, for the tests.

``EventAccumulator`` samples by default (20,000 scalars come back as 10,000), so every size
guidance is 0: keep everything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tensorboard.backend.event_processing import io_wrapper
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

KEEP_EVERYTHING = {"scalars": 0, "tensors": 0, "histograms": 0}
TEXT_SUFFIX = "/text_summary"


@dataclass
class TensorBoardRunData:
    path: Path
    #: tag -> [(step, value)] in file order; values are float32 as TensorBoard stores them.
    scalars: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    wall_times: dict[str, list[float]] = field(default_factory=dict)
    #: text tag (without ``/text_summary``) -> [(step, text)].
    texts: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    #: tag -> [(step, HistogramValue)].
    histograms: dict[str, list[tuple[int, Any]]] = field(default_factory=dict)
    #: From the ``hparams`` sub-run: its session's hparams and its metric scalars; None when
    #: the run has no hparams sub-run.
    hparams: dict[str, Any] | None = None
    hparam_metrics: dict[str, float] = field(default_factory=dict)

    def text(self, tag: str) -> str:
        """The latest text under ``tag``."""
        return self.texts[tag][-1][1]


def load(path: str | Path) -> EventAccumulator:
    return EventAccumulator(str(path), size_guidance=KEEP_EVERYTHING).Reload()


def read_run(path: str | Path, hparams_dir: str = "hparams") -> TensorBoardRunData:
    """Scalars, texts and histograms of the event files directly in ``path``, and the hparams
    of its ``hparams_dir`` sub-run."""
    path = Path(path)
    acc = load(path)
    data = TensorBoardRunData(path=path)
    tags = acc.Tags()
    for tag in tags["scalars"]:
        events = acc.Scalars(tag)
        data.scalars[tag] = [(e.step, e.value) for e in events]
        data.wall_times[tag] = [e.wall_time for e in events]
    for tag in tags["tensors"]:
        if tag.endswith(TEXT_SUFFIX):
            data.texts[tag[: -len(TEXT_SUFFIX)]] = [
                (e.step, e.tensor_proto.string_val[0].decode("utf-8")) for e in acc.Tensors(tag)
            ]
    for tag in tags["histograms"]:
        data.histograms[tag] = [(e.step, e.histogram_value) for e in acc.Histograms(tag)]
    if (path / hparams_dir).is_dir():
        data.hparams, data.hparam_metrics = read_hparams(path / hparams_dir)
    return data


def read_hparams(path: str | Path) -> tuple[dict[str, Any], dict[str, float]]:
    """The hparams of the session recorded in ``path`` and the last value of its metrics."""
    acc = load(path)
    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams: dict[str, Any] = {}
    for key, value in start.session_start_info.hparams.items():
        kind = value.WhichOneof("kind")
        hparams[key] = getattr(value, kind) if kind else None
    metrics = {tag: acc.Scalars(tag)[-1].value for tag in acc.Tags()["scalars"]}
    return hparams, metrics


def run_ids(log_dir: str | Path) -> list[str]:
    """The runs TensorBoard finds under ``log_dir``, named as its run selector names them."""
    root = Path(log_dir)
    return sorted(
        Path(directory).relative_to(root).as_posix()
        for directory in io_wrapper.GetLogdirSubdirectories(str(root))
    )
