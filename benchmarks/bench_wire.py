"""Bytes on the wire: what each client sends per round, and the accuracy it buys, per --compress.

Bytes are counted from the ServerApp's audit trail (replies.jsonl: the serialised size
of every training reply's arrays), so they are what actually arrived, not an estimate.
Bytes are the same in every run; accuracy is not quite (FedAvg sums float32 replies in
the order they arrive), so each setting runs --repeats times and the median is shown.

Run:  python benchmarks/bench_wire.py [--rounds 10] [--models default,2nn] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCHMARKS_MD, header, summary, write_section  # noqa: E402

FEDGE = str(Path(sys.executable).with_name("fedge"))
MODELS = {  # name -> fedge simulate options
    "default": ["--dataset", "digits", "--hidden", "64,64"],
    "2nn": ["--dataset", "mnist", "--hidden", "200,200"],
}


def run(model: str, method: str, rounds: int, out: Path) -> tuple[float, float, int]:
    """(mean bytes per training reply, final test accuracy, numbers in a reply) of one simulation."""
    subprocess.run([FEDGE, "simulate", *MODELS[model], "--clients", "10", "--rounds", str(rounds),
                    "--compress", method, "--out", str(out), "--name", "run"], check=True, capture_output=True)
    replies = [json.loads(line) for line in (out / "run" / "replies.jsonl").read_text().splitlines()]
    sizes = [r["array-bytes"] for r in replies if r["type"] == "train" and "array-bytes" in r]
    accuracy = json.loads((out / "run" / "metrics.json").read_text())["rounds"][-1]["test-accuracy"]
    first = next(r for r in replies if r["type"] == "train")["arrays"]
    return statistics.mean(sizes), accuracy, sum(_count(v["shape"]) for v in first.values())


def _count(shape: list[int]) -> int:
    total = 1
    for size in shape:
        total *= size
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--models", default="default,2nn")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=BENCHMARKS_MD, help="Markdown file whose section is replaced (default: %(default)s)")
    args = parser.parse_args()
    lines = ["| model | parameters | --compress | bytes per client per round | vs none | final test accuracy | "
             "accuracy change (points) |", "|---|---|---|---|---|---|---|"]
    for model in args.models.split(","):
        runs = {method: [] for method in ("none", "fp16", "int8")}
        for _ in range(args.repeats):
            for method, results in runs.items():  # interleaved, so drift hits all alike
                with tempfile.TemporaryDirectory(prefix="fedge-bench-") as tmp:
                    results.append(run(model, method, args.rounds, Path(tmp)))
        none_bytes, _, parameters = runs["none"][0]  # uncompressed: one number per parameter
        for method, results in runs.items():
            size = results[0][0]
            accuracy = [r[1] for r in results]
            change = [100 * (r[1] - base[1]) for r, base in zip(results, runs["none"])]
            lines.append(f"| {model} | {parameters:,} | {method} | {size:,.0f} | {none_bytes / size:.2f}× fewer | "
                         f"{summary(accuracy, '.4f')} | {summary(change, '+.2f')} |")
            print(lines[-1], flush=True)
    body = (header("wire", args.repeats) +
            f"\nJob: `fedge simulate` with 10 IID clients, {args.rounds} rounds, other options default; "
            "`default` is digits with the 64-64-64-10 MLP, `2nn` is MNIST (5,000-image subset) with "
            "784-200-200-10. Bytes per reply are the same in every run; accuracy varies a little from run to "
            "run (FedAvg sums float32 replies in arrival order); the change is against the uncompressed run "
            "of the same repeat.\n\n" + "\n".join(lines) + "\n")
    print(body)
    write_section("wire", "Bytes on the wire (issue 4)", body, args.out)


if __name__ == "__main__":
    main()
