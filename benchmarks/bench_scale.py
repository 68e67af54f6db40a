"""Scale: seconds per round and peak memory of the whole process tree vs the number of
virtual clients (total, and sampled per round), on the shuttle sensor data set.

Memory is the peak, over the run, of the summed PSS (proportional set size: shared
pages split between the processes sharing them) of every process the run started,
sampled every 0.5 s from /proc.

Run:  python benchmarks/bench_scale.py [--totals 100,1000,3000,10000] [--per-round 100]
                                       [--per-round-curve 10,50,100,200] [--rounds 5] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCHMARKS_MD, header, summary, write_section  # noqa: E402

FEDGE = str(Path(sys.executable).with_name("fedge"))
TAG_VAR = "FEDGE_BENCH_TAG"
PLOT = Path(__file__).resolve().parent.parent / "docs" / "scale.png"


def tree_pss_mib(tag: str) -> float:
    """Summed PSS of live processes whose environment carries `tag`."""
    needle, total_kib = f"{TAG_VAR}={tag}".encode(), 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            for line in (entry / "smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kib += int(line.split()[1])
        except OSError:
            continue
    return total_kib / 1024


def run(total: int, per_round: int, rounds: int, out: Path, flower_dispatch: bool = False
        ) -> tuple[float, float, float]:
    """(steady seconds per round, seconds before round 1, peak MiB) of one simulation."""
    tag = uuid.uuid4().hex
    fraction = per_round / total
    command = [FEDGE, "simulate", "--dataset", "shuttle", "--clients", str(total), "--rounds", str(rounds),
               "--fraction-train", str(fraction), "--fraction-evaluate", str(fraction), "--local-epochs", "1",
               "--out", str(out), "--name", "run", *(["--flower-dispatch"] if flower_dispatch else [])]
    peak, done = [0.0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], tree_pss_mib(tag))
            time.sleep(0.5)

    sampler = threading.Thread(target=sample)
    sampler.start()
    start = time.time()
    try:
        subprocess.run(command, env={**os.environ, TAG_VAR: tag}, check=True, capture_output=True)
    finally:
        done.set()
        sampler.join()
    rows = json.loads((out / "run" / "metrics.json").read_text())["rounds"]
    steady = statistics.median(r["seconds"] for r in rows[1:])
    return steady, rows[0]["timestamp"] - rows[0]["seconds"] - start, peak[0]


def measure(points: list[tuple[int, int]], baseline: list[tuple[int, int]], rounds: int, repeats: int
            ) -> tuple[dict[tuple[int, int], list[tuple]], dict[tuple[int, int], list[tuple]]]:
    """Each point with fedge's dispatch, and the `baseline` points with Flower's, interleaved."""
    results: dict[tuple[int, int], list[tuple]] = {p: [] for p in points}
    flower: dict[tuple[int, int], list[tuple]] = {p: [] for p in baseline}
    for repeat in range(repeats):
        for total, per_round in points:
            for store, keep_flowers in ((results, False), (flower, True)):
                if keep_flowers and (total, per_round) not in flower:
                    continue
                with tempfile.TemporaryDirectory(prefix="fedge-bench-") as tmp:
                    store[(total, per_round)].append(run(total, per_round, rounds, Path(tmp), keep_flowers))
                print(f"repeat {repeat + 1}: {total} clients, {per_round} per round"
                      f"{', Flower dispatch' if keep_flowers else ''}: {store[(total, per_round)][-1]}", flush=True)
    return results, flower


def plot(results: dict[tuple[int, int], list[tuple]], per_round: int, totals: list[int],
         curve: list[int], curve_total: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for values, xs, label, axis in (([results[(t, per_round)] for t in totals], totals,
                                      f"total clients ({per_round} per round)", axes[0]),
                                     ([results[(curve_total, k)] for k in curve], curve,
                                      f"clients per round ({curve_total} in total)", axes[1])):
        seconds = [statistics.median(r[0] for r in runs) for runs in values]
        memory = [statistics.median(r[2] for r in runs) / 1024 for runs in values]
        axis.plot(xs, seconds, "o-", color="tab:blue")
        axis.set_xscale("log")
        axis.set_xlabel(label)
        axis.set_ylabel("seconds per round", color="tab:blue")
        twin = axis.twinx()
        twin.plot(xs, memory, "s--", color="tab:red")
        twin.set_ylabel("peak memory of the process tree (GiB)", color="tab:red")
        twin.set_ylim(bottom=0)
        axis.set_ylim(bottom=0)
    fig.suptitle("fedge simulate on shuttle: round time and memory")
    fig.tight_layout()
    PLOT.parent.mkdir(exist_ok=True)
    fig.savefig(PLOT, dpi=100)
    print(f"wrote {PLOT}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--totals", default="100,1000,3000,10000")
    parser.add_argument("--per-round", type=int, default=100)
    parser.add_argument("--per-round-curve", default="10,50,100,200")
    parser.add_argument("--curve-total", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=BENCHMARKS_MD, help="Markdown file whose section is replaced (default: %(default)s)")
    args = parser.parse_args()
    totals = [int(t) for t in args.totals.split(",")]
    curve = [int(k) for k in args.per_round_curve.split(",")]
    points = list(dict.fromkeys([(t, min(args.per_round, t)) for t in totals] +
                                [(args.curve_total, k) for k in curve]))
    baseline = [(t, min(args.per_round, t)) for t in totals]
    results, flower = measure(points, baseline, args.rounds, args.repeats)
    lines = ["| total clients | sampled per round | seconds per round | seconds before round 1 | peak MiB | "
             "Flower's dispatch: seconds per round | before round 1 | round time vs Flower's |",
             "|---|---|---|---|---|---|---|---|"]
    for (total, per_round), runs in results.items():
        row = (f"| {total:,} | {per_round} | {summary([r[0] for r in runs])} | "
               f"{summary([r[1] for r in runs])} | {summary([r[2] for r in runs], '.0f')} |")
        theirs = flower.get((total, per_round))
        if theirs:
            ratios = [ours[0] / base[0] for ours, base in zip(runs, theirs)]
            row += (f" {summary([r[0] for r in theirs])} | {summary([r[1] for r in theirs])} | "
                    f"{summary(ratios)}× |")
        else:
            row += " | | |"
        lines.append(row)
    body = (header("scale", args.repeats) +
            f"\nJob: `fedge simulate --dataset shuttle` (39,277 training rows), {args.rounds} rounds, 1 local "
            "epoch, batch 16. The rows are split among all clients, so the more clients in total, the "
            "fewer rows each sampled client trains on (~393 at 100 clients, ~39 at 1,000) and the less "
            "training a round holds. Seconds per round: median over rounds 2..R. Seconds before round 1: Ray "
            "start-up and enrolment (the schema and statistics query to every client). Peak MiB: summed "
            "PSS of every process of the run. Baseline: the same runs with `--flower-dispatch` (Flower "
            "1.42's own message dispatch, see docs/performance.md), in the same invocation.\n\n"
            + "\n".join(lines) + "\n\n![round time and memory vs clients](docs/scale.png)\n")
    print(body)
    if args.out == BENCHMARKS_MD:
        plot(results, min(args.per_round, max(totals)), totals, curve, args.curve_total)
    write_section("scale", "Scale: virtual clients (issue 4)", body, args.out)


if __name__ == "__main__":
    main()
