"""The three ways to run fedge: a local simulation, a server, a device's client.

Each starts Flower's own processes (flower-superlink, flwr run, flower-supernode)
inside a ProcessSet, so that everything started is stopped on success, failure
and Ctrl+C alike.  The ServerApp reports through files in the run folder; this
module follows them and turns the final status into the exit code.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import tomli_w

from fedge.config import DEFAULT_POLL_INTERVAL, RunConfig
from fedge.data import load_file
from fedge.dispatch import KEEP_FLOWERS
from fedge.processes import (LaunchError, ProcessSet, flower_env, free_port, local_host, split_address, tail,
                             wait_healthy)
from fedge.refusal import REPORT_FILE
from fedge.results import (CHECKPOINT_FILE, COMPLETED, COMPLETED_WITH_FAILURES, FAILED, PROGRESS_FILE, STATUS_FILE,
                           RunFolder)
from fedge.security import CA_CERT, Security

CONNECTION = "fedge"
RUN_CONFIG_FILE = "run-config.toml"
ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")  # Flower colours its log levels
STARTED_RUN = re.compile(r"Successfully started run (\d+)")  # what `flwr run` prints
FLOWER_STATUS_SECONDS = 5.0  # how often to ask Flower whether a run whose stream ended still runs
TOKEN_EXPIRED = "Runtime task-token authentication failed"
TOKEN_HINT = ("the ServerApp process took longer than Flower's 30 s to reach the SuperLink after the run "
              "was handed to it, so Flower refused it; the machine was too busy (e.g. devices starting "
              "on it at the same moment): run the command again, or start the devices once the server "
              "says it is waiting for them")


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


def prepare_run(cfg: RunConfig, default_prefix: str) -> tuple[RunConfig, Path]:
    """Resolve the run folder to an absolute path and give the run a name if it has none
    (`default_prefix`-date-time)."""
    name = cfg.name or f"{default_prefix}-{datetime.now():%Y%m%d-%H%M%S}"
    out = Path(cfg.out).expanduser().resolve()
    run_dir = out / name
    if (run_dir / "status.json").exists():
        raise LaunchError(f"run folder {run_dir} already holds a finished run; choose another --name")
    if (run_dir / CHECKPOINT_FILE).exists():
        raise LaunchError(f"run folder {run_dir} holds an interrupted run; continue it with "
                          f"`fedge server --resume {run_dir}`, or choose another --name")
    return cfg.replace(out=str(out), name=name), run_dir


def resume_run(run_dir: Path) -> tuple[RunConfig, Path]:
    """The config of an interrupted run, read back from its folder; the ServerApp resumes it."""
    run_dir = Path(run_dir).expanduser().resolve()
    run_config = run_dir / RUN_CONFIG_FILE
    if not run_config.exists():
        raise LaunchError(f"{run_dir} is not a fedge run folder (it has no {RUN_CONFIG_FILE})")
    if not (run_dir / CHECKPOINT_FILE).exists():
        raise LaunchError(f"{run_dir} has no completed round to resume from (no {CHECKPOINT_FILE}); "
                          "start a new run instead")
    folder = RunFolder(run_dir)
    status = folder.read_status()
    if status and status["status"] != FAILED:
        raise LaunchError(f"{run_dir} holds a {status['status']} run; there is nothing to resume")
    folder.file(STATUS_FILE).unlink(missing_ok=True)
    return RunConfig.from_flower(tomllib.loads(run_config.read_text())), run_dir


def simulate(cfg: RunConfig, ray_address: str = "", flower_dispatch: bool = False) -> int:
    """Run every client as a virtual SuperNode on Flower's simulation engine.

    With `ray_address`, the engine attaches to that running Ray cluster (Ray reads
    RAY_ADDRESS) instead of starting one on this machine.  `flower_dispatch` keeps
    Flower's own message dispatch instead of fedge.dispatch's.
    """
    cfg = cfg.replace(min_clients=cfg.clients).validate()  # every virtual client takes part; checked here only
    cfg, run_dir = prepare_run(cfg, f"{cfg.dataset}-{cfg.partition}")
    print(f"fedge: simulating {cfg.clients} clients on {cfg.dataset} ({cfg.partition}), "
          f"{cfg.num_rounds} rounds, run folder {run_dir}", flush=True)
    env = flower_env(run_dir / "flwr-home")
    if flower_dispatch:
        env[KEEP_FLOWERS] = "1"  # read by fedge.dispatch in the engine's process
    if ray_address:
        split_address(ray_address)
        env["RAY_ADDRESS"] = ray_address
    with ProcessSet(env, run_dir / "logs") as processes:
        port = start_superlink(processes, "127.0.0.1", free_port(), ["--insecure", "--simulation"])
        write_connection(Path(processes.env["FLWR_HOME"]), f"127.0.0.1:{port}")
        return _submit_and_follow(processes, cfg, run_dir,
                                  [f"num-supernodes={cfg.clients}", "client-resources-num-cpus=1"])


def serve(cfg: RunConfig, address: str, security: Security, resume: Path | None = None) -> int:
    """Start a SuperLink on `address`, submit the run (or resume one), follow it until it ends."""
    host, port = split_address(address)
    security.check(host)
    cfg, run_dir = resume_run(resume) if resume else prepare_run(cfg, "server")
    if cfg.test_data:
        load_file(cfg.test_data, cfg.label_column)  # a bad test file fails here, before anything starts
    print(f"fedge: server on {address}, waiting for {cfg.min_clients} client(s), {cfg.num_rounds} rounds, "
          f"run folder {run_dir}{' (resuming)' if resume else ''}", flush=True)
    with ProcessSet(flower_env(run_dir / "flwr-home"), run_dir / "logs") as processes:
        ca = security.certs / CA_CERT if security.certs else None
        start_superlink(processes, host, port, [*security.superlink_args(), "--database", str(run_dir / "state.db")],
                        ca)
        write_connection(Path(processes.env["FLWR_HOME"]), f"{local_host(host)}:{port}", ca)
        for public_key in security.device_keys():
            _register(processes, public_key)
        return _submit_and_follow(processes, cfg, run_dir, [])


def join(server: str, node_config: dict[str, str | int], security: Security, warm: bool = True,
         poll_interval: float = DEFAULT_POLL_INTERVAL) -> int:
    """Start this device's SuperNode; it serves the server's rounds until stopped or refused.

    `warm` (the default) runs each ClientApp in a process forked from a warm parent
    (fedge.warm_executor) instead of Flower's fresh process per message; the SuperNode
    checks for messages every `poll_interval` seconds (fedge.supernode).
    """
    host, _ = split_address(server)
    security.check(host)
    if not 0 < poll_interval <= 60:
        raise LaunchError(f"--poll-interval {poll_interval:g} is not in (0, 60] seconds")
    home = Path(tempfile.mkdtemp(prefix="fedge-client-"))
    refusal = home / "refused.txt"
    node_config = {**node_config, REPORT_FILE: str(refusal)}
    runtime_port = free_port()
    with ProcessSet(flower_env(home), home / "logs") as processes:
        node = processes.start(
            [sys.executable, "-m", "fedge.supernode", "--poll-interval", str(poll_interval),
             *security.supernode_args(), "--superlink", server,
             "--node-config", " ".join(f"{k}={json.dumps(v)}" for k, v in node_config.items()),
             "--isolation", "process" if warm else "subprocess",
             "--host", "127.0.0.1", "--port", str(runtime_port)], "supernode.log")
        if warm:
            processes.start([sys.executable, "-m", "fedge.warm_executor", "--runtime-api-address",
                             f"127.0.0.1:{runtime_port}", "--node-config", json.dumps(node_config),
                             "--parent-pid", str(node.pid)], "warm-executor.log")
        print(f"fedge: client started as SuperNode (PID {node.pid}), serving {server}; Ctrl+C to leave", flush=True)
        unexplained = False
        try:
            code = _serve_until_done(node, refusal, home / "logs", server, security)
            unexplained = True
            return code
        finally:
            processes.stop()
            if not unexplained:  # stopped by the user, or an error that says what happened
                shutil.rmtree(home, ignore_errors=True)


def _serve_until_done(node: subprocess.Popen, refusal: Path, log_dir: Path, server: str, security: Security) -> int:
    """Wait while the SuperNode serves; turn a refusal or a failed connection into a clear error.

    A SuperNode that ends for any other reason returns its exit code; its logs stay in
    `log_dir` (the caller keeps them) for a look at what Flower said.
    """
    while node.poll() is None and not refusal.exists():
        time.sleep(0.5)
    if refusal.exists():
        raise LaunchError(refusal.read_text().strip())
    log = log_dir / "supernode.log"
    reason = connection_failure(log.read_text(errors="replace"), server, security)
    if reason:
        raise LaunchError(reason)
    print(f"fedge: SuperNode exited with code {node.returncode}; last lines of its log:\n{tail(log)}\n"
          f"fedge: this device's logs are kept in {log_dir}", file=sys.stderr)
    return node.returncode if node.returncode > 0 else 1  # killed by a signal: negative


def connection_failure(log: str, server: str, security: Security) -> str:
    """Why the SuperNode could not join, in the user's terms; "" when its log does not say."""
    if "Failed to initialize the connection to the SuperLink" not in log:
        return ""
    if "CERTIFICATE_VERIFY_FAILED" in log:
        return (f"the server at {server} presented a TLS certificate not signed by --root-cert {security.root_cert}: "
                "use the ca.pem from the server's `fedge certs` folder (or this is not your server)")
    if "Failed to activate SuperNode" in log and security.key:
        return (f"the server at {server} does not admit this device: the public key of --key {security.key} is "
                f"not among its --authorized-keys. Ask its operator to add {security.key.name}.pub and restart")
    if "SSL" in log and not security.root_cert:
        return f"the server at {server} uses TLS: pass --root-cert with the ca.pem from its `fedge certs` folder"
    detail = log.split("Failed to initialize the connection to the SuperLink.", 1)[1].strip().splitlines()
    return f"could not connect to the server at {server}: {detail[0] if detail else 'no reason given'}"


def describe_data(path: str, label_column: str) -> str:
    """Read the device's file once before starting, so a bad file fails here, clearly."""
    table = load_file(path, label_column)
    labels = sorted(set(table.labels.tolist()))
    return (f"{path}: {len(table)} rows, {table.features.shape[1]} features, "
            f"{len(labels)} label(s): {', '.join(labels[:10])}{' …' if len(labels) > 10 else ''}")


def start_superlink(processes: ProcessSet, host: str, port: int, extra: list[str], ca: Path | None = None) -> int:
    """Start flower-superlink with fedge's settings and wait until it answers."""
    link = processes.start(["flower-superlink", *extra, "--host", host, "--port", str(port),
                            "--disable-runtime-dependency-installation"], "superlink.log")
    wait_healthy(host, port, link, processes.log_dir / "superlink.log", ca)
    return port


def _register(processes: ProcessSet, public_key: Path) -> None:
    """Admit one device: the SuperLink accepts only SuperNodes whose public keys were registered."""
    result = subprocess.run(["flwr", "supernode", "register", str(public_key), CONNECTION], env=processes.env,
                            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise LaunchError(f"registering the device key {public_key} failed:\n{result.stdout}{result.stderr}")
    print(f"fedge: device key {public_key.name} registered", flush=True)


def _submit_and_follow(processes: ProcessSet, cfg: RunConfig, run_dir: Path, federation_config: list[str]) -> int:
    folder = RunFolder(run_dir)
    run_config = run_dir / RUN_CONFIG_FILE
    run_config.write_text(tomli_w.dumps(cfg.to_flower()))
    args = ["flwr", "run", str(stage_app(run_dir)), CONNECTION, "--run-config", str(run_config), "--stream"]
    for item in federation_config:
        args += ["--federation-config", item]
    runner = processes.start(args, "flwr-run.log")
    runner_log = processes.log_dir / "flwr-run.log"
    printed = _follow(folder, lambda: runner.poll() is not None)
    if folder.read_status() is None and run_is_active(processes.env, runner_log):
        # `flwr run --stream` can end while the run goes on (its log stream failed, e.g. on
        # "database is locked" in a busy SuperLink): follow the run folder until Flower says it ended.
        print("fedge: Flower's log stream ended but the run goes on; following it from the run folder",
              file=sys.stderr, flush=True)
        _follow(folder, _asked_every(FLOWER_STATUS_SECONDS, lambda: not run_is_active(processes.env, runner_log)),
                printed)
    return _report(folder, processes.log_dir, "flwr-run.log")


def run_is_active(env: dict[str, str], runner_log: Path) -> bool:
    """Whether Flower still counts the run `flwr run` started as pending, starting or running."""
    started = STARTED_RUN.search(runner_log.read_text(errors="replace")) if runner_log.exists() else None
    if started is None:
        return False
    result = subprocess.run(["flwr", "ls", CONNECTION, "--run-id", started.group(1), "--format", "json"],
                            env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    try:
        runs = json.loads(result.stdout)["runs"]
    except (json.JSONDecodeError, KeyError):
        return False  # the SuperLink no longer answers: nothing left to wait for
    return bool(runs) and not runs[0]["status"].startswith("finished")


def _asked_every(seconds: float, question: Callable[[], bool]) -> Callable[[], bool]:
    """`question`, asked at most every `seconds` (it starts a process); False in between."""
    next_ask = time.monotonic()

    def answer() -> bool:
        nonlocal next_ask
        if time.monotonic() < next_ask:
            return False
        next_ask = time.monotonic() + seconds
        return question()

    return answer


def flower_errors(log_dir: Path, limit: int = 5) -> str:
    """The last ERROR lines of Flower's logs, for a run that ended before saying why; "" if none."""
    errors = [f"  {log.name}: {ANSI_COLOUR.sub('', line).strip()}" for log in sorted(log_dir.glob("*.log"))
              for line in log.read_text(errors="replace").splitlines() if "ERROR" in line]
    if not errors:
        return ""
    hint = f"  (hint: {TOKEN_HINT})\n" if any(TOKEN_EXPIRED in e for e in errors) else ""
    return "errors in Flower's logs:\n" + "\n".join(errors[-limit:]) + "\n" + hint


def write_connection(flwr_home: Path, address: str, ca: Path | None = None) -> None:
    """The `flwr` CLI's connection to our SuperLink, in a run-local FLWR_HOME."""
    flwr_home.mkdir(parents=True, exist_ok=True)
    connection = {"address": address, "root-certificates": str(ca)} if ca else {"address": address, "insecure": True}
    (flwr_home / "config.toml").write_text(tomli_w.dumps({"superlink": {"default": CONNECTION, CONNECTION: connection}}))


def _follow(folder: RunFolder, ended: Callable[[], bool], printed: int | None = None) -> int:
    """Print the ServerApp's progress lines after the first `printed` as they appear, until
    the run reports its end or `ended()`; return how many lines have been printed.

    The ServerApp writes status.json last; once it is there, nothing is left to wait
    for (`flwr run --stream` itself lingers for seconds while the runtime shuts down).
    By default a resumed run's earlier lines count as printed: they were, before.
    """
    progress = folder.file(PROGRESS_FILE)
    if printed is None:
        printed = len(progress.read_text().splitlines()) if progress.exists() else 0
    while True:
        done = ended() or folder.read_status() is not None
        if progress.exists():
            lines = progress.read_text().splitlines()
            for line in lines[printed:]:
                print(line, flush=True)
            printed = len(lines)
        if done:
            return printed
        time.sleep(0.2)


def _report(folder: RunFolder, log_dir: Path, runner_log: str) -> int:
    """Exit code from the run's own status file: `flwr run` exits 0 even for failed runs."""
    status = folder.read_status()
    if status is None:
        folder.write_status(FAILED, message="the ServerApp ended without a status; see logs/")
        print(f"fedge: run failed before it could report.\n{flower_errors(log_dir)}"
              f"last lines of {log_dir / runner_log}:\n{tail(log_dir / runner_log)}", file=sys.stderr)
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
