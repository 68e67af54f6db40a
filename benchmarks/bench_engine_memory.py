"""Memory that Flower's simulation engine keeps per virtual client, with and without
fedge.shared_contexts: what makes a simulation's memory grow with its total number of
clients rather than with the sampled ones.

Measured with tracemalloc (Python objects still alive after a garbage collection), in
a fresh process per measurement, on Flower's own functions and fedge's run config:
- registration: what the engine builds for every client before the first round
  (`_register_nodes` and `_register_node_info_stores`: a node record and a Context);
- after one call each: the Context the engine stores when a client's Ray actor sends
  its Context back (an unpickled copy), with Flower's `update_context` (the baseline)
  and with fedge's (one run config shared by all clients).

Run:  python benchmarks/bench_engine_memory.py [--totals 1000,10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import gc
import json
import pickle
import statistics
import subprocess
import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCHMARKS_MD, header, summary, write_section  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
MODES = ("flower", "fedge")


def measure(total: int, mode: str) -> dict[str, float]:
    """KiB per client kept by registration, and by the contexts stored after one call each."""
    from flwr.server.superlink.fleet.vce import vce_api
    from flwr.server.superlink.linkstate import LinkStateFactory
    from flwr.supercore.constant import FLWR_IN_MEMORY_DB_NAME
    from flwr.supercore.object_store import ObjectStoreFactory
    from flwr.supercore.run import Run
    from flwr.superlink.federation import NoOpFederationManager

    from fedge import shared_contexts

    if mode == "fedge":
        shared_contexts.install()
    state_factory = LinkStateFactory(FLWR_IN_MEMORY_DB_NAME, NoOpFederationManager(), ObjectStoreFactory())
    state_factory.state()
    run = Run.create_empty(1)
    tracemalloc.start()
    stores = vce_api._register_node_info_stores(
        nodes_mapping=vce_api._register_nodes(num_nodes=total, state_factory=state_factory),
        run=run, app_dir=str(REPO))
    registered = _kept_kib()
    for store in stores.values():  # what the engine's worker does with each actor's reply
        returned = pickle.loads(pickle.dumps(store.retrieve_context(run.run_id)))
        store.update_context(run.run_id, returned)
    called = _kept_kib()
    return {"registration": registered / total, "after-calls": (called - registered) / total}  # KiB per client


def _kept_kib() -> float:
    gc.collect()
    return tracemalloc.get_traced_memory()[0] / 1024


def in_fresh_process(total: int, mode: str) -> dict[str, float]:
    output = subprocess.run([sys.executable, __file__, "--child", str(total), mode],
                            check=True, capture_output=True, text=True).stdout
    return json.loads(output.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--totals", default="1000,10000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=BENCHMARKS_MD, help="Markdown file whose section is replaced (default: %(default)s)")
    parser.add_argument("--child", nargs=2, metavar=("TOTAL", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(int(args.child[0]), args.child[1])))
        return
    totals = [int(t) for t in args.totals.split(",")]
    results = {(t, m): [] for t in totals for m in MODES}
    for repeat in range(args.repeats):
        for total in totals:
            for mode in MODES:
                results[(total, mode)].append(in_fresh_process(total, mode))
                print(f"repeat {repeat + 1}: {total} clients, {mode}: {results[(total, mode)][-1]}", flush=True)
    rows = ["| clients | after registration (Flower's) | after one call each, Flower | after one call each, fedge "
            "| fedge / Flower |", "|---:|---:|---:|---:|---:|"]
    for total in totals:
        registration = [r["registration"] for r in results[(total, "flower")] + results[(total, "fedge")]]
        flower, fedge = ([r["registration"] + r["after-calls"] for r in results[(total, mode)]] for mode in MODES)
        rows.append(f"| {total:,} | {summary(registration)} | {summary(flower)} | {summary(fedge)} | "
                    f"{statistics.median(fedge) / statistics.median(flower):.2f}x |")
    body = (header("engine memory", args.repeats) + "\nPython objects kept per virtual client (tracemalloc, "
            "after a garbage collection) by Flower's simulation engine, in KiB, fresh process per run. fedge "
            "calls every client once while enrolling them (the schema query).\n\n"
            + "\n".join(rows) + "\n")
    print(body)
    write_section("engine-memory", "Engine memory per virtual client (issue 4)", body, args.out)


if __name__ == "__main__":
    main()
