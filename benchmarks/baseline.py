"""Run the plain Flower app (benchmarks/plain_flower) the way its users would, timed.

It goes through the same SuperLink + `flwr run` path as fedge, with Flower's own
defaults (fedge's quicker SuperExec polling is taken out of its environment).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from fedge.launch import start_superlink, write_connection
from fedge.processes import ProcessSet, flower_env, free_port

PLAIN_APP = Path(__file__).resolve().parent / "plain_flower"


def run_plain(out: Path, run_config: str, federation_config: list[str],
              supernodes: list[str] | None = None) -> tuple[float, list[dict]]:
    """Wall seconds, and the ServerApp's per-round records (time, accuracy, slowest training).

    `supernodes` (node configs) runs a deployment with one SuperNode each; without it,
    a simulation.
    """
    timings = out / "timings.json"
    env = flower_env(out / "flwr-home")
    env.pop("FLWR_SUPEREXEC_TASK_POLL_INTERVAL")
    start = time.time()
    with ProcessSet(env, out / "logs") as processes:
        mode = ["--insecure", "--simulation"] if supernodes is None else ["--insecure"]
        port = start_superlink(processes, "127.0.0.1", free_port(), extra=mode)
        write_connection(out / "flwr-home", f"127.0.0.1:{port}")
        for i, node_config in enumerate(supernodes or []):
            processes.start(["flower-supernode", "--insecure", "--superlink", f"127.0.0.1:{port}",
                             "--node-config", node_config, "--port", str(free_port())], f"supernode{i}.log")
        command = ["flwr", "run", str(PLAIN_APP), "fedge", "--stream", "--run-config",
                   f"{run_config} timings-file='{timings}'"]
        for item in federation_config:
            command += ["--federation-config", item]
        processes.start(command, "flwr-run.log").wait()
    wall = time.time() - start
    return wall, [t for t in json.loads(timings.read_text()) if t["round"] > 0]
