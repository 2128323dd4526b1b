"""Read TensorBoard runs back through tensorboard's own reader, for the tests.

``EventAccumulator`` samples by default (20,000 scalars come back as 10,000), so every size
guidance is 0: keep everything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tensorboard import context
from tensorboard.backend.event_processing import io_wrapper
from tensorboard.backend.event_processing.data_provider import MultiplexerDataProvider
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer
from tensorboard.plugins import base_plugin
from tensorboard.plugins.hparams import api_pb2, backend_context, list_session_groups, plugin_data_pb2

KEEP_EVERYTHING = {"scalars": 0, "tensors": 0, "histograms": 0}
TEXT_SUFFIX = "/text_summary"
SESSION_START_TAG = "_hparams_/session_start_info"


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
    #: The run's HParams session (its params), None when the run has none; and the metric
    #: values the HParams plugin shows for it: the last value of each of the run's scalars.
    hparams: dict[str, Any] | None = None
    hparam_metrics: dict[str, float] = field(default_factory=dict)

    def text(self, tag: str) -> str:
        """The latest text under ``tag``."""
        return self.texts[tag][-1][1]


def load(path: str | Path) -> EventAccumulator:
    return EventAccumulator(str(path), size_guidance=KEEP_EVERYTHING).Reload()


def read_run(path: str | Path) -> TensorBoardRunData:
    """Scalars, texts, histograms and the HParams session of the event files directly in
    ``path``."""
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
    try:
        start = acc.PluginTagToContent("hparams").get(SESSION_START_TAG)
    except KeyError:  # no HParams data in the run
        start = None
    if start is not None:
        data.hparams = session_hparams(plugin_data_pb2.HParamsPluginData.FromString(start))
        data.hparam_metrics = {tag: points[-1][1] for tag, points in data.scalars.items()}
    return data


def session_hparams(data: Any) -> dict[str, Any]:
    hparams: dict[str, Any] = {}
    for key, value in data.session_start_info.hparams.items():
        kind = value.WhichOneof("kind")
        hparams[key] = getattr(value, kind) if kind else None
    return hparams


@dataclass
class Trial:
    """One HParams session as TensorBoard's HParams plugin reports it."""

    run: str
    name: str
    hparams: dict[str, Any]
    metrics: dict[str, float]
    status: str


def hparams_trials(log_dir: str | Path) -> dict[str, Trial]:
    """What the HParams dashboard lists for ``log_dir``, by run: TensorBoard's own multiplexer
    and HParams plugin answering a ListSessionGroups request."""
    multiplexer = EventMultiplexer(tensor_size_guidance={"scalars": 0, "hparams": 0})
    multiplexer.AddRunsFromDirectory(str(log_dir))
    multiplexer.Reload()
    provider = MultiplexerDataProvider(multiplexer, str(log_dir))
    backend = backend_context.Context(base_plugin.TBContext(
        data_provider=provider, logdir=str(log_dir), multiplexer=multiplexer))
    request = api_pb2.ListSessionGroupsRequest(
        allowed_statuses=list(api_pb2.Status.values()), start_index=0, slice_size=10_000)
    response = list_session_groups.Handler(context.RequestContext(), backend, "", request).run()
    trials: dict[str, Trial] = {}
    for group in response.session_groups:
        for session in group.sessions:
            trials[session.name] = Trial(
                run=session.name, name=group.name,
                hparams={k: getattr(v, v.WhichOneof("kind")) for k, v in group.hparams.items()},
                metrics={m.name.tag: m.value for m in session.metric_values if not m.name.group},
                status=api_pb2.Status.Name(session.status),
            )
    return trials


def run_ids(log_dir: str | Path) -> list[str]:
    """The runs TensorBoard finds under ``log_dir``, named as its run selector names them."""
    root = Path(log_dir)
    return sorted(
        Path(directory).relative_to(root).as_posix()
        for directory in io_wrapper.GetLogdirSubdirectories(str(root))
    )
