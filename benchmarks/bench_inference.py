"""Edge inference (issue 6): torch eager against ONNX Runtime, float and int8, on one thread.

    python benchmarks/bench_inference.py [--repeats 5] [--out BENCHMARKS.md]

A device predicts one sample at a time, so the headline is single-sample latency
(p50, p99 over --calls calls); throughput on batches of 1,000 rows is reported too.
Every runtime computes the same graph, scaler and softmax included, from numpy in to
numpy out.  Each repeat measures all runtimes in turn, so a ratio compares numbers
taken in the same run; the table shows the median and the min-max over repeats.
Results replace the section between the inference markers in --out.
"""

from __future__ import annotations

import argparse
import gc
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmark this checkout's fedge
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, summary, write_section  # noqa: E402
from fedge.data import FeatureStats, Scaler, load_builtin
from fedge.export import EdgeNetwork, export_onnx
from fedge.model import ModelSpec, TrainedModel, build, save_model
from fedge.predict import EdgeModel
from fedge.training import TrainSettings, train_central

MACHINE_PACKAGES = ("torch", "onnxruntime", "numpy")
BATCH = 1000
RUNTIMES = ("torch eager", "ONNX Runtime float", "ONNX Runtime int8")

Predict = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Case:
    name: str
    model: TrainedModel
    inputs: np.ndarray  # raw features, float32; cycled through for single-sample calls


@dataclass(frozen=True)
class Sizes:
    calls: int  # single-sample calls per repeat
    batches: int  # batch calls per repeat
    epochs: int  # training epochs of the digits MLP


def digits_mlp(epochs: int) -> Case:
    train, test = load_builtin("digits")
    model = train_central(train, (64, 64), TrainSettings(epochs=epochs))
    return Case(f"default MLP, 64 features → 64, 64 → 10 classes, trained centrally on digits for {epochs} "
                "epochs", model, test.features)


def two_nn() -> Case:
    """The 2NN of McMahan et al. (MNIST-sized); seeded random init and inputs: timing needs no training."""
    rng = np.random.default_rng(0)
    inputs = rng.random((1000, 784), dtype=np.float32)
    spec = ModelSpec(n_features=784, hidden=(200, 200), n_classes=10)
    model = TrainedModel(spec, build(spec).state_dict(), Scaler.from_stats(FeatureStats.of(inputs)),
                         tuple(str(d) for d in range(10)), tuple(f"x{i}" for i in range(784)))
    return Case("2NN, 784 → 200, 200 → 10, untrained (seeded random weights, random inputs)", model, inputs)


def runtimes(case: Case, folder: Path) -> dict[str, tuple[Predict, int]]:
    """Each runtime's predict function (numpy in, numpy out) and model file size in bytes."""
    save_model(folder / "model.pt", case.model)
    export_onnx(case.model, folder / "model.onnx")
    export_onnx(case.model, folder / "model.int8.onnx", int8=True)
    network = EdgeNetwork(case.model).eval()

    def eager(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return network(torch.from_numpy(x)).numpy()

    return {"torch eager": (eager, (folder / "model.pt").stat().st_size),
            "ONNX Runtime float": (EdgeModel(folder / "model.onnx", threads=1).predict_proba,
                                   (folder / "model.onnx").stat().st_size),
            "ONNX Runtime int8": (EdgeModel(folder / "model.int8.onnx", threads=1).predict_proba,
                                  (folder / "model.int8.onnx").stat().st_size)}


@contextmanager
def no_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def latency_us(predict: Predict, inputs: np.ndarray, calls: int) -> tuple[float, float]:
    """(p50, p99) in microseconds of single-sample calls, after a warm-up."""
    rows = [inputs[i % len(inputs)][None, :] for i in range(calls)]
    for row in rows[:100]:
        predict(row)
    times = np.empty(calls)
    with no_gc():
        for i, row in enumerate(rows):
            start = time.perf_counter_ns()
            predict(row)
            times[i] = time.perf_counter_ns() - start
    p50, p99 = np.percentile(times, [50, 99]) / 1000
    return float(p50), float(p99)


def rows_per_second(predict: Predict, inputs: np.ndarray, batches: int) -> float:
    batch = np.ascontiguousarray(np.resize(inputs, (BATCH, inputs.shape[1])))
    predict(batch)
    with no_gc():
        start = time.perf_counter()
        for _ in range(batches):
            predict(batch)
        return BATCH * batches / (time.perf_counter() - start)


def measure(case: Case, sizes: Sizes, repeats: int) -> tuple[dict[str, dict[str, list[float]]], dict[str, int]]:
    """Per runtime, per metric, one value per repeat; and the model file sizes."""
    with tempfile.TemporaryDirectory(prefix="fedge-bench-") as tmp:
        predictors = runtimes(case, Path(tmp))
        reference = predictors["torch eager"][0](case.inputs[:100])
        for name, (predict, _) in predictors.items():  # never time a graph that computes something else
            agreement = (predict(case.inputs[:100]).argmax(1) == reference.argmax(1)).mean()
            assert agreement >= 0.95, f"{case.name}: {name} agrees with torch on only {agreement:.0%}"
        results: dict[str, dict[str, list[float]]] = {r: {"p50": [], "p99": [], "rows/s": [], "ratio": []}
                                                      for r in RUNTIMES}
        for _ in range(repeats):
            for name in RUNTIMES:
                p50, p99 = latency_us(predictors[name][0], case.inputs, sizes.calls)
                results[name]["p50"].append(p50)
                results[name]["p99"].append(p99)
                results[name]["rows/s"].append(rows_per_second(predictors[name][0], case.inputs, sizes.batches))
            for name in RUNTIMES:
                results[name]["ratio"].append(results["torch eager"]["p50"][-1] / results[name]["p50"][-1])
        return results, {name: size for name, (_, size) in predictors.items()}


def table(case: Case, results: dict[str, dict[str, list[float]]], sizes: dict[str, int]) -> str:
    lines = [f"**{case.name}**", "",
             "| runtime | single sample p50 (µs) | p99 (µs) | p50 speed-up vs torch eager "
             f"| batch of {BATCH:,} (rows/s) | model file |",
             "|---|---|---|---|---|---|"]
    for name in RUNTIMES:
        r = results[name]
        lines.append(f"| {name} | {summary(r['p50'], '.1f')} | {summary(r['p99'], '.1f')} "
                     f"| {summary(r['ratio'], '.2f')}× | {summary(r['rows/s'], ',.0f')} "
                     f"| {sizes[name] / 1024:.1f} KiB |")
    return "\n".join(lines)


def report(command: str, sizes: Sizes, repeats: int, tables: list[str]) -> str:
    return "\n".join([
        f"- Command: `{command}`",
        f"- Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {machine(MACHINE_PACKAGES)}",
        f"- Method: one thread everywhere (`torch.set_num_threads(1)`, ONNX Runtime "
        f"`intra_op_num_threads=1`); {sizes.calls:,} single-sample calls and {sizes.batches} batches of "
        f"{BATCH:,} per runtime per repeat; {repeats} repeats, shown as median (min-max). Every runtime runs "
        "scaler + MLP + softmax, numpy in and out; torch eager is `EdgeNetwork` under "
        "`torch.inference_mode()`; the float ONNX file has the scaler folded into its first layer, the int8 one "
        "keeps it as two steps (see `fedge/export.py`); ONNX Runtime runs through `fedge.predict.EdgeModel`, "
        "input checks included (its session settings are in `docs/inference.md`). Speed-up = torch p50 / runtime p50 within the same repeat. "
        "Model file: `model.pt` for torch (weights + spec + scaler + names), the exported ONNX file otherwise.",
        "", *[block for t in tables for block in (t, "")]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="repeats of every measurement (default: %(default)s)")
    parser.add_argument("--calls", type=int, default=2000, help="single-sample calls per repeat (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "BENCHMARKS.md",
                        help="Markdown file whose inference section is replaced (default: %(default)s)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes to check the script runs; numbers mean nothing")
    args = parser.parse_args()
    sizes = Sizes(calls=120, batches=2, epochs=1) if args.smoke else Sizes(calls=args.calls, batches=50, epochs=10)
    repeats = 2 if args.smoke else args.repeats
    torch.set_num_threads(1)
    command = shlex.join(["python", os.path.relpath(__file__), *sys.argv[1:]])
    print(f"$ {command}\n{machine(MACHINE_PACKAGES)}", flush=True)
    tables = []
    for case in (digits_mlp(sizes.epochs), two_nn()):
        results, file_sizes = measure(case, sizes, repeats)
        tables.append(table(case, results, file_sizes))
        print(f"\n{tables[-1]}", flush=True)
    write_section("inference", "Edge inference (issue 6)", report(command, sizes, repeats, tables), args.out)


if __name__ == "__main__":
    main()
