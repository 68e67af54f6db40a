"""Deployment round overhead: a server and 3 clients on loopback, fedge vs plain Flower.

Each round's overhead is its wall time minus the slowest client's local training
time: what the federation itself costs (messages, process start-up, polling).
Both run digits split in 3 IID partitions, 1 local epoch, batch 16, lr 0.05, every
client sampled in every round.

Run:  python benchmarks/bench_deployment.py [--repeats 3] [--rounds 5]
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

from fedge.processes import free_port  # noqa: E402

FEDGE = str(Path(sys.executable).with_name("fedge"))
CLIENTS = 3


def run_fedge(rounds: int, out: Path) -> tuple[float, list[float]]:
    """Wall seconds and per-round overheads of `fedge server` with 3 `fedge client`s."""
    address = f"127.0.0.1:{free_port()}"
    start = time.time()
    server = subprocess.Popen([FEDGE, "server", "--address", address, "--rounds", str(rounds),
                               "--min-clients", str(CLIENTS), "--dataset", "digits", "--local-epochs", "1",
                               "--out", str(out), "--name", "fedge"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    clients = [subprocess.Popen([FEDGE, "client", "--server", address, "--dataset", "digits",
                                 "--partition-id", str(i), "--num-partitions", str(CLIENTS)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(CLIENTS)]
    try:
        if server.wait(timeout=900) != 0:
            raise RuntimeError(f"fedge server failed; see {out / 'fedge' / 'logs'}")
    finally:
        for client in clients:
            client.terminate()
            client.wait()
    wall = time.time() - start
    rows = json.loads((out / "fedge" / "metrics.json").read_text())["rounds"]
    return wall, [r["seconds"] - r["slowest-train-seconds"] for r in rows]


def run_plain_deployment(rounds: int, out: Path) -> tuple[float, list[float]]:
    wall, records = run_plain(out, f"num-server-rounds={rounds} fraction-train=1.0 fraction-evaluate=1.0",
                              [], [f"partition-id={i} num-partitions={CLIENTS}" for i in range(CLIENTS)])
    ends = [r["time"] for r in records]
    return wall, [b - a - r["slowest-train-seconds"] for a, b, r in zip(ends, ends[1:], records[1:])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=BENCHMARKS_MD, help="Markdown file whose section is replaced (default: %(default)s)")
    args = parser.parse_args()
    contenders = {"fedge": run_fedge, "plain Flower": run_plain_deployment}
    overheads: dict[str, list[float]] = {name: [] for name in contenders}
    walls: dict[str, list[float]] = {name: [] for name in contenders}
    for repeat in range(args.repeats):
        for name, run in contenders.items():
            with tempfile.TemporaryDirectory(prefix="fedge-bench-") as tmp:
                wall, per_round = run(args.rounds, Path(tmp))
            steady = statistics.median(per_round[1:])  # round 1 includes start-up
            walls[name].append(wall)
            overheads[name].append(steady)
            print(f"repeat {repeat + 1}: {name}: wall {wall:.1f}s, overhead per round {per_round}", flush=True)
    lines = ["| contender | messages per client per round | wall s | overhead per round s | vs plain |",
             "|---|---|---|---|---|"]
    for name, messages in (("fedge", 1), ("plain Flower", 2)):
        ratios = [a / b for a, b in zip(overheads[name], overheads["plain Flower"])]
        lines.append(f"| {name} | {messages} | {summary(walls[name])} | {summary(overheads[name])} | "
                     f"{summary(ratios)}× |")
    body = (header("deployment", args.repeats) +
            f"\nJob: flower-superlink + {CLIENTS} flower-supernodes on 127.0.0.1, digits in {CLIENTS} IID "
            f"partitions, {args.rounds} rounds, 1 local epoch.\n\n" + "\n".join(lines) + "\n\n"
            "Overhead per round: median over rounds 2..R of (round wall time − slowest client's local "
            "training time).\n")
    print(body)
    write_section("deployment", "Deployment round overhead (issue 4)", body, args.out)


if __name__ == "__main__":
    main()
