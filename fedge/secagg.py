"""Secure aggregation with Flower's SecAgg+ protocol: the server learns only the sum.

In Flower 1.42 SecAgg+ exists only in the older API: `flwr.server.workflow.SecAggPlusWorkflow`
drives a legacy strategy (`flwr.server.strategy.FedAvg`, FitIns/FitRes) through a
`LegacyContext`, and the client's `secaggplus_mod` expects legacy FitIns/FitRes records.
The Message-API strategies cannot run it, so this path alone uses the legacy pieces:

- server: `SecureTraining.train` runs one round's train exchange as the SecAgg+ workflow
  (setup, share keys, collect masked vectors, unmask) inside fedge's own round loop;
  evaluation, metrics and the model stay on fedge's normal path.
- client: `RunConfigSecAggMod` hands train messages to `secaggplus_mod` when the run
  asks for --secagg; in the masking stage the mod calls the ClientApp, whose legacy
  reply `train_reply` builds from fedge's usual `fedge.client.train_reply`.

The protocol clips every parameter to ±CLIPPING_RANGE and quantises it to
QUANTIZATION_RANGE levels, so the aggregate equals plain FedAvg within
2 × CLIPPING_RANGE / QUANTIZATION_RANGE per parameter (tests/test_secagg.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.client.mod import secaggplus_mod
from flwr.clientapp.typing import ClientAppCallable
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.compat.common import recorddict_compat as compat
from flwr.server import ServerConfig, SimpleClientManager
from flwr.server.compat.grid_client_proxy import GridClientProxy
from flwr.server.compat.legacy_context import LegacyContext
from flwr.server.strategy import FedAvg as LegacyFedAvg
from flwr.server.workflow import SecAggPlusWorkflow
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD, Key

from fedge.client import DataSource
from fedge.client import train_reply as plain_train_reply
from fedge.config import RunConfig
from fedge.fast_arrays import array_record

CLIPPING_RANGE = 8.0  # Flower's default: MLP weights stay far inside ±8
QUANTIZATION_RANGE = 2**22
ARRAY_NAMES = "array-names"  # legacy Parameters carry no names: the server sends them along
FEDGE_CONFIG = "fedge-config"  # legacy configs hold scalars only: fedge's config travels as JSON


class SecureTraining:
    """One round's training through SecAgg+; the grid only ever carries masked vectors."""

    def __init__(self, grid: Any, cfg: RunConfig, config: dict[str, Any],
                 on_replies: Callable[[list[Message]], None]) -> None:
        self.grid, self.cfg, self.config = grid, cfg, config
        self.on_replies = on_replies
        self.strategy = LegacyFedAvg(fraction_fit=cfg.fraction_train, min_fit_clients=2, min_available_clients=2,
                                     fit_metrics_aggregation_fn=_weighted_mean)
        self.workflow = SecAggPlusWorkflow(num_shares=1.0, reconstruction_threshold=0.5,
                                           clipping_range=CLIPPING_RANGE, quantization_range=QUANTIZATION_RANGE,
                                           timeout=cfg.round_timeout)

    def train(self, rnd: int, arrays: ArrayRecord) -> tuple[ArrayRecord | None, dict[str, Any], int, int]:
        """Return (new arrays or None, train metrics, clients sampled, clients whose update was summed)."""
        names = list(arrays.keys())
        self.strategy.on_fit_config_fn = lambda server_round: {FEDGE_CONFIG: json.dumps(
            {**self.config, "server-round": server_round, ARRAY_NAMES: names})}
        context = LegacyContext(Context(run_id=0, node_id=0, node_config={}, state=RecordDict(), run_config={}),
                                config=ServerConfig(num_rounds=self.cfg.num_rounds), strategy=self.strategy,
                                client_manager=self._client_manager())
        initial = compat.parameters_to_arrayrecord(ndarrays_to_parameters(arrays.to_numpy_ndarrays()), True)
        context.state.array_records[MAIN_PARAMS_RECORD] = initial
        context.state.config_records[MAIN_CONFIGS_RECORD] = ConfigRecord({Key.CURRENT_ROUND: rnd})
        watched = _WatchedGrid(self.grid, self.on_replies)
        self.workflow(watched, context)
        sampled, summed = watched.clients_in_stages()
        if context.state.array_records[MAIN_PARAMS_RECORD] is initial:  # the workflow halted
            return None, {}, sampled, 0
        aggregate = compat.arrayrecord_to_parameters(context.state.array_records[MAIN_PARAMS_RECORD], True)
        metrics = context.history.metrics_distributed_fit
        row = {key: values[-1][1] for key, values in metrics.items() if values and values[-1][0] == rnd}
        new = array_record(dict(zip(names, parameters_to_ndarrays(aggregate), strict=True)))
        return new, row, sampled, summed

    def _client_manager(self) -> SimpleClientManager:
        manager = SimpleClientManager()
        for node in self.grid.get_node_ids():
            manager.register(GridClientProxy(node, self.grid, run_id=0))
        return manager


class _WatchedGrid:
    """Passes the workflow's messages through, showing every reply to fedge's audit trail."""

    def __init__(self, grid: Any, on_replies: Callable[[list[Message]], None]) -> None:
        self._grid, self._on_replies = grid, on_replies
        self._stage_clients: list[int] = []

    def send_and_receive(self, messages: Any, *, timeout: float | None = None) -> list[Message]:
        replies = list(self._grid.send_and_receive(messages, timeout=timeout))
        self._on_replies(replies)
        self._stage_clients.append(sum(not r.has_error() for r in replies))
        return replies

    def clients_in_stages(self) -> tuple[int, int]:
        """(clients that answered the setup stage, clients whose masked vector was collected)."""
        stages = self._stage_clients + [0, 0, 0]
        return stages[0], stages[2]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._grid, name)


def _weighted_mean(results: list[tuple[int, dict[str, Any]]]) -> dict[str, float]:
    total = sum(n for n, _ in results)
    keys = set.intersection(*(set(m) for _, m in results)) if results else set()
    return {k: sum(n * float(m[k]) for n, m in results) / total for k in sorted(keys)}


# --- client side ----------------------------------------------------------------------

class RunConfigSecAggMod:
    """Client mod: run Flower's secaggplus_mod on train messages when the run asks for --secagg."""

    def __call__(self, msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
        if msg.metadata.message_type != MessageType.TRAIN or not RunConfig.from_flower(context.run_config).secagg:
            return call_next(msg, context)
        return secaggplus_mod(msg, context, call_next)


def train_reply(content: RecordDict, source: DataSource, cfg: RunConfig) -> RecordDict:
    """Answer SecAgg+'s legacy FitIns with a legacy FitRes, training exactly as fedge always does."""
    fitins = compat.recorddict_to_fitins(content, keep_input=True)
    config = json.loads(str(fitins.config[FEDGE_CONFIG]))
    names = config.pop(ARRAY_NAMES)
    arrays = array_record(dict(zip(names, parameters_to_ndarrays(fitins.parameters), strict=True)))
    reply = plain_train_reply(RecordDict({"arrays": arrays, "config": ConfigRecord(config)}), source, cfg)
    metrics = dict(reply["metrics"])
    fitres = FitRes(Status(Code.OK, ""), ndarrays_to_parameters(reply["arrays"].to_numpy_ndarrays()),
                    int(metrics.pop("num-examples")), metrics)
    return compat.fitres_to_recorddict(fitres, keep_input=True)


def is_legacy_train(content: RecordDict) -> bool:
    """True for the FitIns SecAgg+ forwards to the ClientApp in its masking stage."""
    return any(key.startswith("fitins.") for key in content)

