"""Simulation cost: fedge vs a plain Flower app vs the compute floor, on the same job.

The job: digits, N clients (IID), a fraction sampled per round, R rounds, 1 local
epoch of SGD (batch 16, lr 0.05) on the 64-64-64-10 MLP.  Three contenders:
- fedge:      `fedge simulate ...`
- plain:      benchmarks/plain_flower (Flower's quickstart pattern) through the same
              SuperLink + `flwr run` path, Flower's default client resources
- plain-1cpu: the same plain app with one CPU per virtual client (two actors on two cores)
- floor:      the same local training steps back to back in one process, no federation

Run:  python benchmarks/bench_simulation.py [--repeats 3] [--clients 100] [--rounds 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline import run_plain  # noqa: E402
from common import BENCHMARKS_MD, header, summary, write_section  # noqa: E402

FEDGE = str(Path(sys.executable).with_name("fedge"))


def run_fedge(args: argparse.Namespace, out: Path) -> tuple[float, list[float]]:
    """Wall seconds of `fedge simulate`, and the end time of each round."""
    start = time.time()
    subprocess.run([FEDGE, "simulate", "--clients", str(args.clients), "--rounds", str(args.rounds),
                    "--fraction-train", str(args.fraction), "--fraction-evaluate", str(args.fraction),
                    "--local-epochs", "1", "--batch-size", "16", "--lr", "0.05",
                    "--out", str(out), "--name", "fedge"], check=True, capture_output=True)
    wall = time.time() - start
    rows = json.loads((out / "fedge" / "metrics.json").read_text())["rounds"]
    return wall, [start] + [row["timestamp"] for row in rows]


def run_plain_simulation(args: argparse.Namespace, out: Path, cpus_per_client: int | None
                         ) -> tuple[float, list[float]]:
    """Wall seconds of the plain Flower app on the same job, and round end times."""
    federation = [f"num-supernodes={args.clients}"]
    if cpus_per_client:
        federation.append(f"client-resources-num-cpus={cpus_per_client}")
    start = time.time()
    wall, rounds = run_plain(out, f"num-server-rounds={args.rounds} fraction-train={args.fraction} "
                                  f"fraction-evaluate={args.fraction}", federation)
    if len(rounds) != args.rounds:
        raise RuntimeError(f"plain app finished {len(rounds)} of {args.rounds} rounds; see {out / 'logs'}")
    return wall, [start] + [r["time"] for r in rounds]


def compute_floor(args: argparse.Namespace) -> float:
    """Seconds per round of the same local training, back to back in one process."""
    import numpy as np
    import torch

    from fedge.data import FeatureStats, Scaler, encode_labels, load_builtin, sorted_classes
    from fedge.model import ModelSpec, build
    from fedge.partition import partition_rows
    from fedge.training import TrainSettings, fit

    torch.set_num_threads(1)
    train, _ = load_builtin("digits")
    x = Scaler.from_stats(FeatureStats.of(train.features)).transform(train.features)
    y = encode_labels(train.labels, sorted_classes(set(train.labels)), "digits")
    spec = ModelSpec(64, (64, 64), 10)
    global_state = build(spec).state_dict()
    parts = [partition_rows(train.labels, args.clients, i, "iid") for i in range(args.clients)]
    per_round = max(1, int(args.clients * args.fraction))
    rng = np.random.default_rng(0)
    # Warm up untimed: the first optimizer a process builds imports torch._dynamo (~2 s).
    fit(build(spec), x[:16], y[:16], TrainSettings(epochs=1, batch_size=16))
    start = time.perf_counter()
    for rnd in range(args.rounds):
        for client in rng.choice(args.clients, per_round, replace=False):
            model = build(spec)
            model.load_state_dict(global_state)
            rows = parts[client][len(parts[client]) // 10:]
            fit(model, x[rows], y[rows], TrainSettings(epochs=1, batch_size=16, lr=0.05, seed=rnd))
    return (time.perf_counter() - start) / args.rounds


def describe(wall: float, ends: list[float]) -> dict[str, float]:
    gaps = [b - a for a, b in zip(ends[2:], ends[3:])]  # rounds 3..R: warm
    return {"wall": wall, "first": ends[1] - ends[0], "steady": statistics.median(gaps)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--out", type=Path, default=BENCHMARKS_MD, help="Markdown file whose section is replaced (default: %(default)s)")
    args = parser.parse_args()
    contenders = {"fedge": lambda out: run_fedge(args, out),
                  "plain Flower (default resources)": lambda out: run_plain_simulation(args, out, None),
                  "plain Flower (1 CPU per client)": lambda out: run_plain_simulation(args, out, 1)}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
    for repeat in range(args.repeats):
        for name, run in contenders.items():  # interleaved, so drift hits all alike
            with tempfile.TemporaryDirectory(prefix="fedge-bench-") as tmp:
                results[name].append(describe(*run(Path(tmp))))
            print(f"repeat {repeat + 1}: {name}: {results[name][-1]}", flush=True)
    floor = [compute_floor(args) for _ in range(args.repeats)]
    per_round = max(1, int(args.clients * args.fraction))
    calls = {"fedge": per_round, "plain Flower (default resources)": 2 * per_round,
             "plain Flower (1 CPU per client)": 2 * per_round}
    base = "plain Flower (default resources)"
    lines = ["| contender | wall s | to 1st round s | steady round s | client calls/round | "
             "overhead per call ms | wall vs plain |", "|---|---|---|---|---|---|---|"]
    for name, runs in results.items():
        ratios = [r["wall"] / b["wall"] for r, b in zip(runs, results[base])]
        overhead = [(r["steady"] - f) / calls[name] * 1000 for r, f in zip(runs, floor)]
        lines.append(f"| {name} | {summary([r['wall'] for r in runs])} | {summary([r['first'] for r in runs])} | "
                     f"{summary([r['steady'] for r in runs])} | {calls[name]} | {summary(overhead)} | "
                     f"{summary(ratios)}× |")
    lines.append(f"| compute floor (same training, one process) | | | {summary(floor)} | | | |")
    body = (header("simulation", args.repeats) +
            f"\nJob: digits, {args.clients} clients IID, {per_round} per round, {args.rounds} rounds, 1 local "
            "epoch, batch 16, lr 0.05, MLP 64-64-64-10.\n\n" + "\n".join(lines) + "\n\n"
            "Steady round: median over rounds 3..R of the time between round ends. Overhead per call: "
            "(steady round − compute floor per round) / client calls per round. fedge makes one call per "
            "sampled client per round (its clients evaluate the incoming model before training); the "
            "plain app makes two (train, then evaluate).\n")
    print(body)
    write_section("simulation", "Simulation cost (issue 4)", body, args.out)


if __name__ == "__main__":
    main()
