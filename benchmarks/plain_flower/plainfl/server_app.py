"""ServerApp, as in Flower's quickstart-pytorch, plus a timestamp per round for the benchmark."""

import json
import time

from flwr.app import ArrayRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg
from flwr.serverapp.strategy.strategy_utils import aggregate_metricrecords

from plainfl.task import Net, test, test_data

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    timings, slowest = [], [0.0]

    def train_metrics(records, weight_key):  # the benchmark's only addition: slowest local training
        slowest.append(max(r["metrics"]["train_seconds"] for r in records))
        return aggregate_metricrecords(records, weight_key)

    def central_evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        net = Net()
        net.load_state_dict(arrays.to_torch_state_dict())
        loss, accuracy = test(net, *test_data())
        timings.append({"round": server_round, "time": time.time(), "accuracy": accuracy,
                        "slowest-train-seconds": slowest[-1]})
        if cfg["timings-file"]:
            with open(cfg["timings-file"], "w") as handle:
                json.dump(timings, handle)
        return MetricRecord({"loss": loss, "accuracy": accuracy})

    strategy = FedAvg(fraction_train=cfg["fraction-train"], fraction_evaluate=cfg["fraction-evaluate"],
                      train_metrics_aggr_fn=train_metrics)
    strategy.start(grid=grid, initial_arrays=ArrayRecord(Net().state_dict()),
                   num_rounds=cfg["num-server-rounds"], evaluate_fn=central_evaluate)
