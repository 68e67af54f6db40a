"""The server side of a run: enrol clients, then train round by round.

Flower's `Strategy.start` runs a fixed loop with no place for enrolment, progress,
per-round files or honest failure counts, so fedge drives the rounds itself with the
strategy's own `configure_*` / `aggregate_*` methods (the same calls `start` makes).
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from logging import INFO, WARNING
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.common import log
from flwr.serverapp import Grid

from fedge.checkpoint import Checkpoint, load_checkpoint, restore_strategy, save_checkpoint, strategy_state
from fedge.config import ConfigError, RunConfig
from fedge.data import DataError, Table, encode_labels, load_builtin, load_file
from fedge.dispatch import reply_stored
from fedge.metrics import held_out_metrics
from fedge.model import ModelSpec, TrainedModel, build, save_model
from fedge.privacy import epsilon
from fedge.refusal import REFUSAL
from fedge.results import COMPLETED, COMPLETED_WITH_FAILURES, FAILED, MODEL_FILE, RunFolder
from fedge.schema import (ClientReport, EveryClientRefused, RunSchema, SchemaError, agree, feature_difference,
                          stats_from_record)
from fedge.secagg import SecureTraining
from fedge.strategy import build_strategy
from fedge.wire import Packer

QUERY_TIMEOUT = 120.0  # seconds without any new answer before the schema query gives up on the rest
QUERY_BATCH = 1000  # schema queries stored at once: every dispatch sweep re-checks every stored message
PROGRESS_SECONDS = 10.0  # how often a long exchange reports how far it got
REPLY_POLL_SECONDS = (0.005, 0.02)  # look for replies soon after sending, then back off to this


class FederationError(RuntimeError):
    """The run cannot go on (too few clients, nobody answered, ...)."""


def run_dir_for(cfg: RunConfig, run_id: int) -> Path:
    return Path(cfg.out) / (cfg.name or f"{cfg.dataset or 'run'}-{run_id}")


def serve(grid: Grid, cfg: RunConfig, run_dir: Path) -> None:
    """Run the whole federation; whatever happens, leave an honest status.json behind."""
    folder = RunFolder(run_dir)
    folder.write_config(cfg.to_flower())
    try:
        _Federation(grid, cfg.validate(), folder).run()
    except (ConfigError, DataError, SchemaError, FederationError) as err:
        folder.progress(f"run failed: {err}")
        folder.write_status(FAILED, message=str(err))
    except Exception as err:
        folder.progress(f"run failed: {type(err).__name__}: {err}")
        folder.write_status(FAILED, message=f"{type(err).__name__}: {err}",
                            traceback=traceback.format_exc())
        raise


@dataclass
class _Enrolment:
    """Which nodes answered the schema query and fit the run; new nodes are asked as they appear."""

    schema: RunSchema | None = None
    accepted: set[int] = field(default_factory=set)
    refused: dict[int, str] = field(default_factory=dict)


class _AcceptedGrid:
    """The grid as the strategy should see it: only nodes whose data fit the run."""

    def __init__(self, grid: Grid, enrolment: _Enrolment) -> None:
        self._grid, self._enrolment = grid, enrolment

    def get_node_ids(self) -> list[int]:
        return [n for n in self._grid.get_node_ids() if n in self._enrolment.accepted]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._grid, name)


class _Federation:
    def __init__(self, grid: Grid, cfg: RunConfig, folder: RunFolder) -> None:
        self.grid, self.cfg, self.folder = grid, cfg, folder
        self.enrolment = _Enrolment()
        self.accepted_grid = _AcceptedGrid(grid, self.enrolment)
        self.test = _server_test_table(cfg)
        self.started = time.monotonic()
        self.rejections = 0  # replies rejected in the current round
        self.packer = Packer()

    # --- enrolment -------------------------------------------------------------------
    def wait_for_clients(self) -> None:
        """Wait (bounded) until min-clients accepted nodes are connected, enrolling new ones."""
        deadline = time.monotonic() + self.cfg.wait_timeout
        said = False
        while True:
            self.enrol_new_nodes()
            connected = len(self.accepted_grid.get_node_ids())
            if connected >= self.cfg.min_clients:
                return
            if not said:  # once per wait: the server is up and what it waits for
                self._say(f"waiting for {self.cfg.min_clients} client(s) to connect, {connected} so far "
                          f"(--wait-timeout {self.cfg.wait_timeout:g}s)")
                said = True
            if time.monotonic() > deadline:
                raise FederationError(
                    f"only {connected} usable client(s) connected within --wait-timeout "
                    f"{self.cfg.wait_timeout:g}s; --min-clients is {self.cfg.min_clients}. Start more "
                    "clients, or lower --min-clients")
            time.sleep(1.0)

    def enrol_new_nodes(self) -> None:
        known = self.enrolment.accepted | set(self.enrolment.refused)
        new = [n for n in self.grid.get_node_ids() if n not in known]
        if not new:
            return
        reports, failures = self._query(new)
        for node, reason in failures.items():
            self._say(f"node {node} did not answer the schema query: {reason}", WARNING)
        if self.enrolment.schema is None:
            try:
                schema = agree(reports, self.cfg.classes, self.test.feature_names if self.test else ())
            except EveryClientRefused as err:  # misfits came first: refuse them, wait for fitting devices
                newly_refused = err.refused
            else:
                self.enrolment.schema = schema
                self._say(f"{len(schema.accepted)} client(s) enrolled: {len(schema.feature_names)} features, "
                          f"classes {', '.join(schema.classes)}")
                newly_refused = schema.refused
                self.enrolment.accepted.update(schema.accepted)
        else:
            newly_refused = {}
            for report in reports:
                reason = self._misfit(report)
                if reason:
                    newly_refused[report.node_id] = reason
                else:
                    self.enrolment.accepted.add(report.node_id)
                    self._say(f"node {report.node_id} joined")
        for node, reason in newly_refused.items():
            self._say(f"node {node} refused: {reason}", WARNING)
        self.enrolment.refused.update(newly_refused)
        self._tell_refused(newly_refused)

    def _tell_refused(self, refused: dict[int, str]) -> None:
        """Tell refused devices why (no reply awaited), so that their `fedge client` stops and says so."""
        classes = list(self.enrolment.schema.classes if self.enrolment.schema else self.cfg.classes)
        self.grid.push_messages([Message(RecordDict({REFUSAL: ConfigRecord({"reason": why, "classes": classes})}),
                                         dst_node_id=node, message_type=MessageType.QUERY)
                                 for node, why in refused.items()])

    def _misfit(self, report: ClientReport) -> str:
        schema = self.enrolment.schema
        unknown = sorted(report.labels - set(schema.classes))
        return feature_difference(schema.feature_names, report.feature_names) or (
            f"labels {', '.join(unknown)} are not among the run's classes" if unknown else "")

    def _query(self, nodes: Iterable[int]) -> tuple[list[ClientReport], dict[int, str]]:
        """Ask `nodes` for schema and statistics, QUERY_BATCH at a time."""
        nodes = list(nodes)
        reports, failures = [], {}
        for start in range(0, len(nodes), QUERY_BATCH):
            batch_reports, batch_failures = self._query_batch(nodes[start:start + QUERY_BATCH], start, len(nodes))
            reports += batch_reports
            failures.update(batch_failures)
        return reports, failures

    def _query_batch(self, nodes: list[int], answered_before: int, total: int
                     ) -> tuple[list[ClientReport], dict[int, str]]:
        messages = [Message(RecordDict(), dst_node_id=n, message_type=MessageType.QUERY) for n in nodes]
        # Thousands of simulated clients answer one after another: wait while answers keep coming.
        replies = send_and_receive(self.grid, messages, QUERY_TIMEOUT, patient=True,
                                   on_progress=lambda done: self._say(
                                       f"schema query: {answered_before + done} of {total} client(s) answered"))
        node_of = destinations(messages)
        self.folder.record_replies(describe_reply(reply) for reply in replies)
        reports, failures = [], {}
        for reply in replies:
            node = node_of[reply.metadata.reply_to_message_id]
            if reply.has_error():
                failures[node] = reply.error.reason
                continue
            schema, stats = reply.content["schema"], reply.content["stats"]
            reports.append(ClientReport(node, tuple(schema["feature-names"]), frozenset(schema["labels"]),
                                        stats_from_record(stats["num-examples"], stats["sums"],
                                                          stats["squares"])))
        failures.update({node: "no reply in time" for node in unanswered(node_of, replies)})
        return reports, failures

    # --- rounds ----------------------------------------------------------------------
    def run(self) -> None:
        resumed = load_checkpoint(self.folder.path)
        if resumed:
            self.enrolment.schema = resumed.schema
            self._say(f"resuming after round {resumed.round} of {self.cfg.num_rounds}")
        self.wait_for_clients()
        schema = self.enrolment.schema
        spec = ModelSpec(len(schema.feature_names), self.cfg.hidden, len(schema.classes),
                         self.cfg.activation, self.cfg.dropout)
        arrays = resumed.arrays if resumed else ArrayRecord(build(spec, self.cfg.seed).state_dict())
        strategy = build_strategy(self.cfg, on_reject=self._rejected)
        if resumed:
            restore_strategy(strategy, resumed.strategy_state)
        config = {"scaler-mean": schema.scaler.mean.tolist(), "scaler-std": schema.scaler.std.tolist(),
                  "classes": list(schema.classes)}
        test_xy = self._test_arrays(schema)
        evaluator = build(spec)  # built once: each round only loads the new weights into it
        secure = None
        if self.cfg.secagg:
            secure = SecureTraining(self.accepted_grid, self.cfg, config,
                                    lambda replies: self.folder.record_replies(map(describe_reply, replies)))
        rows: list[dict[str, Any]] = resumed.rows if resumed else []
        for rnd in range(len(rows) + 1, self.cfg.num_rounds + 1):
            round_start = time.monotonic()
            self.rejections = 0
            self.wait_for_clients()
            replies: list[Message] = []
            if secure:  # the server sees only the masked sum: nothing per client to validate or time
                new_arrays, train_metrics, sent, trained = secure.train(rnd, arrays)
            else:
                sent, replies = self._exchange(strategy.configure_train(rnd, arrays, ConfigRecord(config),
                                                                        self.accepted_grid))
                if rows:  # each client first evaluated the model it received: the previous round's
                    rows[-1].update(client_evaluation(replies))
                new_arrays, train_metrics = strategy.aggregate_train(rnd, replies)
                trained = _ok(replies) - self.rejections
            if new_arrays is not None:
                arrays = new_arrays
            row = {"round": rnd, "train-clients": trained, "train-failures": sent - trained,
                   "rejected": self.rejections}
            if train_metrics is not None and "train-loss" in train_metrics:
                row["train-loss"] = train_metrics["train-loss"]
            if replies:
                row["slowest-train-seconds"] = slowest_training(replies)
            if test_xy:
                evaluator.load_state_dict(arrays.to_torch_state_dict())
                row.update(held_out_metrics(evaluator, *test_xy))
            if self.cfg.dp != "none":
                row["epsilon"] = epsilon(self.cfg, rnd)
            row["seconds"] = round(time.monotonic() - round_start, 3)
            row["timestamp"] = round(time.time(), 3)
            rows.append(row)
            rows_json = self.folder.write_metrics(rows)
            save_checkpoint(self.folder.path, Checkpoint(rnd, arrays, schema, rows, strategy_state(strategy)),
                            rows_json)
            self._say(_progress_line(rows, self.cfg.num_rounds, time.monotonic() - self.started))
        # The last model has not been to the clients yet: one evaluation-only exchange.
        eval_sent, eval_replies = self._exchange(
            strategy.configure_evaluate(self.cfg.num_rounds, arrays, ConfigRecord(config), self.accepted_grid))
        rows[-1].update(client_evaluation(eval_replies))
        rows[-1]["eval-failures"] = eval_sent - _ok(eval_replies)
        self.folder.write_metrics(rows)
        model = TrainedModel(spec, arrays.to_torch_state_dict(), schema.scaler, schema.classes,
                             schema.feature_names)
        save_model(self.folder.file(MODEL_FILE), model)
        final = {k: v for k, v in rows[-1].items() if k.endswith("accuracy") or k.endswith("loss")}
        total_failures = sum(r["train-failures"] for r in rows) + rows[-1]["eval-failures"]
        status = COMPLETED_WITH_FAILURES if total_failures else COMPLETED
        self.folder.write_status(status, rounds=len(rows), failures=total_failures, final=final,
                                 seconds=round(time.monotonic() - self.started, 2))
        self._say(f"run {status}: {len(rows)} rounds, {total_failures} failed client replies; "
                  f"model in {self.folder.file(MODEL_FILE)}")

    def _rejected(self, server_round: int, node: int, why: str) -> None:
        self.rejections += 1
        self._say(f"round {server_round}: rejected the reply of node {node}: {why}", WARNING)

    def _exchange(self, messages: Iterable[Message]) -> tuple[int, list[Message]]:
        """Send the model to the sampled clients; their replies, unpacked, as the strategy expects them."""
        messages = list(messages)
        if not messages:
            return 0, []
        layouts = [self.packer.outgoing(m) for m in messages]
        replies = send_and_receive(self.grid, messages, self.cfg.round_timeout)
        node_of = destinations(messages)
        layout_of = {m.metadata.message_id: layout for m, layout in zip(messages, layouts)}
        late = unanswered(node_of, replies)
        if late:
            self._say(f"no reply within --round-timeout {self.cfg.round_timeout:g}s from node(s) "
                      f"{', '.join(map(str, late))}", WARNING)
        entries = []
        for reply in replies:
            wire_bytes = array_bytes(reply)  # as it came: packed
            self.packer.incoming(reply, layout_of.get(reply.metadata.reply_to_message_id))
            entries.append(describe_reply(reply, wire_bytes))
            if reply.has_error():
                self._say(f"node {node_of[reply.metadata.reply_to_message_id]} failed: {reply.error.reason}",
                          WARNING)
        self.folder.record_replies(entries)
        return len(messages), replies

    def _test_arrays(self, schema: RunSchema) -> tuple[np.ndarray, np.ndarray] | None:
        if self.test is None:
            return None
        x = schema.scaler.transform(self.test.features)
        return x, encode_labels(self.test.labels, schema.classes, self.cfg.test_data or f"{self.cfg.dataset} test set")

    def _say(self, line: str, level: int = INFO) -> None:
        log(level, "fedge: %s", line)
        self.folder.progress(line)


def send_and_receive(grid: Grid, messages: list[Message], timeout: float, patient: bool = False,
                     on_progress: Callable[[int], None] | None = None) -> list[Message]:
    """Push messages, then collect replies until all are in or `timeout` passes.

    `timeout` counts from the push, or with `patient` from the latest reply, so that
    a long exchange that keeps moving is not cut off.  `on_progress(replies so far)`
    is called every PROGRESS_SECONDS while replies are outstanding.
    Flower's `Grid.send_and_receive` has neither and, in deployment, looks for
    replies only every 3 s, which adds up to 3 s to every round.
    """
    pending = set(grid.push_messages(messages))
    deadline = time.monotonic() + timeout
    next_report = time.monotonic() + PROGRESS_SECONDS
    poll, longest_poll = REPLY_POLL_SECONDS
    replies: list[Message] = []
    while pending:
        received = list(grid.pull_messages(pending))
        replies += received
        pending -= {reply.metadata.reply_to_message_id for reply in received}
        now = time.monotonic()
        if received and patient:
            deadline = now + timeout
        if not pending or now >= deadline:
            break
        if on_progress and now >= next_report:
            on_progress(len(replies))
            next_report = now + PROGRESS_SECONDS
        reply_stored.wait(poll)  # set in simulation when a reply lands; otherwise a plain sleep
        reply_stored.clear()  # before the next look, so a reply stored after it wakes the next wait
        poll = min(poll * 1.5, longest_poll)
    return replies


def destinations(messages: Iterable[Message]) -> dict[str, int]:
    """Node id of each pushed message, by message id.

    Replies are matched to nodes through this, not through their sender: an error reply
    that Flower makes itself (an upload that never completed) names the server's node.
    """
    return {m.metadata.message_id: m.metadata.dst_node_id for m in messages}


def unanswered(node_of: dict[str, int], replies: Iterable[Message]) -> list[int]:
    """Nodes whose message got no reply at all."""
    answered = {reply.metadata.reply_to_message_id for reply in replies}
    return [node for message_id, node in node_of.items() if message_id not in answered]


def describe_reply(reply: Message, wire_bytes: int | None = None) -> dict[str, Any]:
    """What a client sent, without the values: the audit trail in replies.jsonl.

    `wire_bytes`: the size of its arrays as they travelled, when that differs from
    their size now (a packed reply, see fedge.wire).
    """
    entry: dict[str, Any] = {"type": reply.metadata.message_type, "node": reply.metadata.src_node_id}
    if reply.has_error():
        return {**entry, "error": reply.error.reason}
    for key, record in reply.content.items():
        if isinstance(record, ArrayRecord):
            entry[key] = {name: {"shape": list(array.shape), "dtype": array.dtype}
                          for name, array in record.items()}
            entry["array-bytes"] = array_bytes(reply) if wire_bytes is None else wire_bytes
        else:
            entry[key] = {name: type(value).__name__ for name, value in record.items()}
    return entry


def array_bytes(reply: Message) -> int:
    """Serialised size of every array a reply holds."""
    if reply.has_error():
        return 0
    return sum(len(array.data) for record in reply.content.values() if isinstance(record, ArrayRecord)
               for array in record.values())


def _server_test_table(cfg: RunConfig) -> Table | None:
    if cfg.test_data:
        return load_file(cfg.test_data, cfg.label_column)
    if cfg.dataset:
        return load_builtin(cfg.dataset)[1]
    return None


def _ok(replies: list[Message]) -> int:
    return sum(not r.has_error() for r in replies)


def client_evaluation(replies: list[Message]) -> dict[str, float | int]:
    """Clients' loss and accuracy of the model they received, weighted by their validation rows.

    Training replies carry it (a client evaluates the incoming model before it trains,
    which saves a second message per round), and so do evaluation-only replies.
    Replies whose evaluation metrics are missing or malformed are left out.
    """
    metrics = [m for m in _reply_metrics(replies) if _evaluation_ok(m)]
    total = sum(m["eval-examples"] for m in metrics)
    if not total:
        return {}
    return {"client-examples": total,
            "client-loss": sum(m["eval-loss"] * m["eval-examples"] for m in metrics) / total,
            "client-accuracy": sum(m["eval-accuracy"] * m["eval-examples"] for m in metrics) / total}


def slowest_training(replies: list[Message]) -> float:
    """The longest local training among the replies: the floor under a round's time."""
    seconds = [m.get("train-seconds") for m in _reply_metrics(replies)]
    return max((s for s in seconds if isinstance(s, float) and math.isfinite(s)), default=0.0)


def _reply_metrics(replies: list[Message]) -> list[MetricRecord]:
    return [r.content["metrics"] for r in replies
            if not r.has_error() and isinstance(r.content.get("metrics"), MetricRecord)]


def _evaluation_ok(metrics: MetricRecord) -> bool:
    examples, loss, accuracy = (metrics.get(k) for k in ("eval-examples", "eval-loss", "eval-accuracy"))
    return (isinstance(examples, int) and examples > 0 and isinstance(loss, float) and math.isfinite(loss)
            and isinstance(accuracy, float) and 0.0 <= accuracy <= 1.0)


def _progress_line(rows: list[dict[str, Any]], num_rounds: int, elapsed: float) -> str:
    """One line per round; the previous round's client accuracy arrives with this round's replies."""
    row = rows[-1]
    parts = [f"round {row['round']}/{num_rounds}",
             f"clients {row['train-clients']} ok {row['train-failures']} failed"]
    if "train-loss" in row:
        parts.append(f"train-loss {row['train-loss']:.4f}")
    if "test-accuracy" in row:
        parts.append(f"test-accuracy {row['test-accuracy']:.4f}")
    if len(rows) > 1 and "client-accuracy" in rows[-2]:
        parts.append(f"client-accuracy[{rows[-2]['round']}] {rows[-2]['client-accuracy']:.4f}")
    if "epsilon" in row:
        parts.append(f"epsilon {row['epsilon']:.3f}")
    parts.append(f"elapsed {elapsed:.1f}s")
    return "  ".join(parts)
