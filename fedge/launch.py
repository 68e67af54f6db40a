"""The three ways to run fedge: a local simulation, a server, a device's client.

Each starts Flower's own processes (flower-superlink, flwr run, flower-supernode)
inside a ProcessSet, so that everything started is stopped on success, failure
and Ctrl+C alike.  The ServerApp reports through files in the run folder; this
module follows them and turns the final status into the exit code.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import tomli_w

from fedge.config import RunConfig
from fedge.data import load_file
from fedge.processes import ProcessSet, flower_env, free_port, is_loopback, split_address, tail, wait_healthy
from fedge.results import COMPLETED, COMPLETED_WITH_FAILURES, FAILED, PROGRESS_FILE, RunFolder

CONNECTION = "fedge"


class LaunchError(RuntimeError):
    """Something fedge needs before starting is missing or wrong."""


@dataclass(frozen=True)
class Security:
    """How a connection is protected; plain HTTP only on loopback or when asked for."""

    insecure: bool = False

    def check(self, host: str) -> None:
        if not self.insecure and not is_loopback(host):
            raise LaunchError(f"{host} is not a loopback address: an unencrypted connection would expose "
                              "model updates on the network. Pass --insecure to accept that explicitly.")


APP_PACKAGES = ("fedge", "clients", "server")


def stage_app(run_dir: Path) -> Path:
    """Copy just the Flower app (pyproject.toml and the three packages) into the run folder.

    `flwr run` bundles every file it finds under the app folder, walking all of it;
    in the source folder that walk includes .venv and takes ~4 s of each run's start.
    """
    root = Path(__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    if not pyproject.exists() or "[tool.flwr.app]" not in pyproject.read_text():
        raise LaunchError(f"fedge's Flower app folder was not found at {root}; install fedge from its "
                          "source folder (./dev, or pip install -e .)")
    staged = run_dir / "app" / "fedge"
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    shutil.copy2(pyproject, staged / "pyproject.toml")
    for package in APP_PACKAGES:
        shutil.copytree(root / package, staged / package, ignore=shutil.ignore_patterns("__pycache__"))
    return staged


def prepare_run(cfg: RunConfig) -> tuple[RunConfig, Path]:
    """Resolve the run folder to an absolute path and give the run a name if it has none."""
    name = cfg.name or f"{cfg.dataset or 'run'}-{cfg.partition}-{datetime.now():%Y%m%d-%H%M%S}"
    out = Path(cfg.out).expanduser().resolve()
    run_dir = out / name
    if (run_dir / "status.json").exists():
        raise LaunchError(f"run folder {run_dir} already holds a finished run; choose another --name")
    return cfg.replace(out=str(out), name=name), run_dir


def simulate(cfg: RunConfig, ray_address: str = "") -> int:
    """Run every client as a virtual SuperNode on Flower's simulation engine.

    With `ray_address`, the engine attaches to that running Ray cluster (Ray reads
    RAY_ADDRESS) instead of starting one on this machine.
    """
    cfg, run_dir = prepare_run(cfg.replace(min_clients=cfg.clients))
    print(f"fedge: simulating {cfg.clients} clients on {cfg.dataset} ({cfg.partition}), "
          f"{cfg.num_rounds} rounds, run folder {run_dir}", flush=True)
    env = flower_env(run_dir / "flwr-home")
    if ray_address:
        split_address(ray_address)
        env["RAY_ADDRESS"] = ray_address
    with ProcessSet(env, run_dir / "logs") as processes:
        port = start_superlink(processes, "127.0.0.1", port=free_port(), extra=["--insecure", "--simulation"])
        return _submit_and_follow(processes, cfg, run_dir, f"127.0.0.1:{port}",
                                  [f"num-supernodes={cfg.clients}", "client-resources-num-cpus=1"])


def serve(cfg: RunConfig, address: str, security: Security) -> int:
    """Start a SuperLink on `address`, submit the run, follow it until it ends."""
    host, port = split_address(address)
    security.check(host)
    cfg, run_dir = prepare_run(cfg)
    print(f"fedge: server on {address}, waiting for {cfg.min_clients} client(s), {cfg.num_rounds} rounds, "
          f"run folder {run_dir}", flush=True)
    with ProcessSet(flower_env(run_dir / "flwr-home"), run_dir / "logs") as processes:
        start_superlink(processes, host, port, extra=["--insecure", "--database", str(run_dir / "state.db")])
        return _submit_and_follow(processes, cfg, run_dir, f"{host}:{port}", [])


def join(server: str, node_config: dict[str, str | int], security: Security, warm: bool = True) -> int:
    """Start this device's SuperNode; it serves the server's rounds until stopped.

    `warm` (the default) runs each ClientApp in a process forked from a warm parent
    (fedge.warm_executor) instead of Flower's fresh process per message.
    """
    host, _ = split_address(server)
    security.check(host)
    home = Path(tempfile.mkdtemp(prefix="fedge-client-"))
    runtime_port = free_port()
    with ProcessSet(flower_env(home), home / "logs") as processes:
        node = processes.start(
            ["flower-supernode", "--insecure", "--superlink", server,
             "--node-config", " ".join(f"{k}={json.dumps(v)}" for k, v in node_config.items()),
             "--isolation", "process" if warm else "subprocess",
             "--host", "127.0.0.1", "--port", str(runtime_port)], "supernode.log")
        if warm:
            processes.start([sys.executable, "-m", "fedge.warm_executor", "--runtime-api-address",
                             f"127.0.0.1:{runtime_port}", "--node-config", json.dumps(node_config),
                             "--parent-pid", str(node.pid)], "warm-executor.log")
        print(f"fedge: client started as SuperNode (PID {node.pid}), serving {server}; Ctrl+C to leave", flush=True)
        try:
            code = node.wait()
            print(f"fedge: SuperNode exited with code {code}; last lines of its log:\n"
                  f"{tail(home / 'logs' / 'supernode.log')}", file=sys.stderr)
            return code or 1
        finally:
            processes.stop()
            shutil.rmtree(home, ignore_errors=True)


def describe_data(path: str, label_column: str) -> str:
    """Read the device's file once before starting, so a bad file fails here, clearly."""
    table = load_file(path, label_column)
    labels = sorted(set(table.labels.tolist()))
    return (f"{path}: {len(table)} rows, {table.features.shape[1]} features, "
            f"{len(labels)} label(s): {', '.join(labels[:10])}{' …' if len(labels) > 10 else ''}")


def start_superlink(processes: ProcessSet, host: str, port: int, extra: list[str]) -> int:
    """Start flower-superlink with fedge's settings and wait until it answers."""
    link = processes.start(["flower-superlink", *extra, "--host", host, "--port", str(port),
                            "--disable-runtime-dependency-installation"], "superlink.log")
    wait_healthy(host, port, link, processes.log_dir / "superlink.log")
    return port


def _submit_and_follow(processes: ProcessSet, cfg: RunConfig, run_dir: Path, control: str,
                       federation_config: list[str]) -> int:
    folder = RunFolder(run_dir)
    write_connection(Path(processes.env["FLWR_HOME"]), control)
    run_config = run_dir / "run-config.toml"
    run_config.write_text(tomli_w.dumps(cfg.to_flower()))
    args = ["flwr", "run", str(stage_app(run_dir)), CONNECTION, "--run-config", str(run_config), "--stream"]
    for item in federation_config:
        args += ["--federation-config", item]
    runner = processes.start(args, "flwr-run.log")
    _follow(folder, runner)
    return _report(folder, processes.log_dir / "flwr-run.log")


def write_connection(flwr_home: Path, address: str) -> None:
    """The `flwr` CLI's connection to our SuperLink, in a run-local FLWR_HOME."""
    flwr_home.mkdir(parents=True, exist_ok=True)
    (flwr_home / "config.toml").write_text(tomli_w.dumps(
        {"superlink": {"default": CONNECTION, CONNECTION: {"address": address, "insecure": True}}}))


def _follow(folder: RunFolder, runner: subprocess.Popen) -> None:
    """Print the ServerApp's progress lines as they appear, until the run reports its end.

    The ServerApp writes status.json last; once it is there, nothing is left to wait
    for (`flwr run --stream` itself lingers for seconds while the runtime shuts down).
    """
    progress, printed = folder.file(PROGRESS_FILE), 0
    while True:
        done = runner.poll() is not None or folder.read_status() is not None
        if progress.exists():
            lines = progress.read_text().splitlines()
            for line in lines[printed:]:
                print(line, flush=True)
            printed = len(lines)
        if done:
            return
        time.sleep(0.2)


def _report(folder: RunFolder, runner_log: Path) -> int:
    """Exit code from the run's own status file: `flwr run` exits 0 even for failed runs."""
    status = folder.read_status()
    if status is None:
        folder.write_status(FAILED, message="the ServerApp ended without a status; see logs/")
        print(f"fedge: run failed before it could report; last lines of {runner_log}:\n{tail(runner_log)}",
              file=sys.stderr)
        return 1
    if status["status"] in (COMPLETED, COMPLETED_WITH_FAILURES):
        final = status.get("final", {})
        accuracy = final.get("test-accuracy", final.get("client-accuracy"))
        shown = f"final accuracy {accuracy:.4f}, " if accuracy is not None else ""
        print(f"fedge: {status['status']}: {shown}{status['rounds']} rounds in {status['seconds']:.1f}s, "
              f"{status['failures']} failed client replies; results in {folder.path}", flush=True)
        return 0
    print(f"fedge: run failed: {status.get('message')}", file=sys.stderr)
    return 1
