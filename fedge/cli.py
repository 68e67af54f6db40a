"""The `fedge` command: parses options into a RunConfig and calls `fedge.launch`."""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from fedge.config import DEFAULT_POLL_INTERVAL, ConfigError, RunConfig, parse_option, option_name
from fedge.data import DataError
from fedge.processes import LaunchError
from fedge.security import Security

SIMULATION_ONLY = {"clients", "partition", "alpha", "shards_per_client"}
DEPLOYMENT_ONLY = {"min_clients", "test_data", "wait_timeout"}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    # SIGTERM unwinds like Ctrl+C, so every started process gets stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return args.command(args)
    except (ConfigError, DataError, LaunchError, ValueError) as err:
        print(f"fedge {args.command_name}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fedge: interrupted; every process fedge started has been stopped", file=sys.stderr)
        return 130


def _simulate(args: argparse.Namespace) -> int:
    from fedge import launch

    base = RunConfig.from_toml(args.experiment) if args.experiment else RunConfig()
    # launch.simulate validates, once min-clients is --clients
    return launch.simulate(_run_config(args, base, SIMULATION_ONLY), args.ray_address, args.flower_dispatch)


def _server(args: argparse.Namespace) -> int:
    from fedge import launch

    cfg = _run_config(args, RunConfig(dataset=""), DEPLOYMENT_ONLY).validate()
    if args.resume and cfg != RunConfig(dataset=""):
        raise LaunchError("--resume continues the run with its own options (from its run-config.toml); "
                          "drop the other run options")
    security = Security(args.insecure, certs=args.certs, authorized_keys=args.authorized_keys)
    return launch.serve(cfg, args.address, security, args.resume)


def _client(args: argparse.Namespace) -> int:
    from fedge import launch

    if args.data:
        print(f"fedge: {launch.describe_data(args.data, args.label_column)}", flush=True)
        node_config = {"data-path": str(Path(args.data).resolve()), "label-column": args.label_column}
    elif args.dataset and args.partition_id is not None and args.num_partitions:
        node_config = {"dataset": args.dataset, "partition-id": args.partition_id,
                       "num-partitions": args.num_partitions}
    else:
        raise LaunchError("this client has no data: give --data FILE (CSV or NPZ), or "
                          "--dataset NAME --partition-id I --num-partitions N for a demo")
    return launch.join(args.server, node_config, Security(args.insecure, root_cert=args.root_cert, key=args.key),
                       warm=not args.cold_start, poll_interval=args.poll_interval)


def _export(args: argparse.Namespace) -> int:
    from fedge import export

    model_path, int8 = export.find_model(args.run), args.quantize == "int8"
    out = args.out or export.default_out(model_path, int8)
    export.export_onnx(export.read_model(model_path), out, int8=int8)
    print(f"fedge: wrote {out} ({out.stat().st_size:,} bytes)")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from fedge import predict  # ONNX Runtime only: runs where torch and Flower are not installed

    rows = predict.predict_file(args.model, args.data, args.out, args.label_column)
    if args.out:
        print(f"fedge: wrote {rows} predictions to {args.out}")
    return 0


def _certs(args: argparse.Namespace) -> int:
    from fedge.certs import make_certs

    for path in make_certs(args.folder, args.host, args.device or []):
        print(f"fedge: wrote {path}")
    return 0


def _plot(args: argparse.Namespace) -> int:
    from fedge.plots import plot_runs

    missing = [str(d) for d in args.runs if not (d / "metrics.json").exists()]
    if missing:
        raise LaunchError(f"no metrics.json in {', '.join(missing)}: give run folders "
                          "(e.g. runs/digits-iid-20250101-120000)")
    print(f"fedge: wrote {plot_runs(args.runs, args.out)}")
    return 0


def _partitions(args: argparse.Namespace) -> int:
    from fedge.data import load_builtin
    from fedge.partition import all_partitions
    from fedge.plots import plot_label_distribution

    cfg = RunConfig(dataset=args.dataset, partition=args.partition, clients=args.clients, alpha=args.alpha,
                    shards_per_client=args.shards_per_client, seed=args.seed).validate()
    train, _ = load_builtin(cfg.dataset)
    parts = all_partitions(train.labels, cfg.clients, cfg.partition, cfg.alpha,
                           cfg.shards_per_client, cfg.seed)
    skew = f" α={cfg.alpha:g}" if cfg.partition == "dirichlet" else ""
    title = f"{cfg.dataset}: {cfg.partition}{skew} over {cfg.clients} clients"
    print(f"fedge: wrote {plot_label_distribution(parts, train.labels, args.out, title)}")
    return 0


def _run_config(args: argparse.Namespace, base: RunConfig, only_here: set[str]) -> RunConfig:
    """Overlay the options given on the command line onto `base`."""
    changes = {}
    for f in _run_fields(only_here):
        value = getattr(args, f.name)
        if value is not None:
            changes[f.name] = parse_option(f, value)
    return base.replace(**changes)


def _run_fields(only_here: set[str]) -> list[dataclasses.Field]:
    excluded = (SIMULATION_ONLY | DEPLOYMENT_ONLY) - only_here
    return [f for f in dataclasses.fields(RunConfig) if f.name not in excluded]


def _add_run_options(parser: argparse.ArgumentParser, only_here: set[str], defaults: RunConfig) -> None:
    group = parser.add_argument_group("run options (also the keys of an experiment TOML file)")
    for f in _run_fields(only_here):
        default = getattr(defaults, f.name)
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        group.add_argument(f"--{option_name(f)}", dest=f.name, metavar="VALUE",
                           help=f"{f.metadata['help']} (default: {shown!r})")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fedge", description="Federated learning of small MLPs on edge "
                                     "devices, on Flower: simulate, serve, or join as a client.")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    sim = commands.add_parser("simulate", help="run a federated simulation of many virtual clients",
                              description="Run a simulation on Flower's simulation engine: every virtual "
                              "client trains on its partition of a built-in data set.")
    sim.add_argument("experiment", nargs="?", type=Path,
                     help="experiment TOML file (e.g. simulations/digits-iid.toml); options override it")
    sim.add_argument("--ray-address", default="", metavar="HOST:PORT",
                     help="attach to this running Ray cluster (e.g. from `ray start --head`) instead of "
                          "starting one here")
    sim.add_argument("--flower-dispatch", action="store_true",
                     help="keep Flower's own message dispatch in its simulation engine (slower with "
                          "thousands of clients; see docs/performance.md)")
    _add_run_options(sim, SIMULATION_ONLY, RunConfig())
    sim.set_defaults(command=_simulate, command_name="simulate")

    srv = commands.add_parser("server", help="start a server and run the rounds with connecting devices",
                              description="Start a Flower SuperLink, wait for devices, run the rounds, "
                              "write the run folder, stop everything it started.")
    srv.add_argument("--address", default="127.0.0.1:9092", help="HOST:PORT to listen on (default: %(default)s)")
    srv.add_argument("--insecure", action="store_true",
                     help="allow unencrypted HTTP on a non-loopback address")
    srv.add_argument("--certs", type=Path, metavar="DIR", help="serve over TLS with the CA and server "
                     "certificate `fedge certs` wrote to DIR")
    srv.add_argument("--authorized-keys", type=Path, metavar="DIR",
                     help="admit only devices whose public keys (*.pub) are in DIR; needs --certs")
    srv.add_argument("--resume", type=Path, metavar="RUN_DIR",
                     help="continue an interrupted run from its last completed round, with its own options")
    _add_run_options(srv, DEPLOYMENT_ONLY, RunConfig(dataset=""))
    srv.set_defaults(command=_server, command_name="server")

    cli = commands.add_parser("client", help="join a server as a device with its own data file",
                              description="Start a Flower SuperNode for this device. Only model weights "
                              "and scalar metrics leave it.")
    cli.add_argument("--server", required=True, help="server HOST:PORT")
    cli.add_argument("--data", help="this device's data: CSV with a header row, or NPZ with x and y")
    cli.add_argument("--label-column", default="label", help="label column of the CSV (default: %(default)s)")
    cli.add_argument("--dataset", help="demo: use a partition of a built-in data set instead of --data")
    cli.add_argument("--partition-id", type=int, help="demo: which partition (0-based)")
    cli.add_argument("--num-partitions", type=int, help="demo: how many partitions")
    cli.add_argument("--insecure", action="store_true",
                     help="allow unencrypted HTTP to a non-loopback server")
    cli.add_argument("--cold-start", action="store_true",
                     help="run each message in a fresh process, as Flower does by default (slower: "
                          "re-imports torch and reloads the data every time)")
    cli.add_argument("--poll-interval", type=float, default=DEFAULT_POLL_INTERVAL, metavar="SECONDS",
                     help="how often the device asks the server for new messages (default: %(default)s; "
                          "Flower's own is 3): shorter starts rounds sooner, costs one request per interval")
    cli.add_argument("--root-cert", type=Path, metavar="FILE",
                     help="connect over TLS, trusting the server certificate signed by this CA (ca.pem)")
    cli.add_argument("--key", type=Path, metavar="FILE", help="this device's private key (from `fedge certs "
                     "--device NAME`), for servers that admit only known devices")
    cli.set_defaults(command=_client, command_name="client")

    plot = commands.add_parser("plot", help="draw accuracy and loss per round of one or more runs",
                               description="Draw test (or client) accuracy and loss per round from each run "
                               "folder's metrics.json, all runs on one figure.")
    plot.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="run folder")
    plot.add_argument("--out", type=Path, default=Path("runs.png"), help="PNG file (default: %(default)s)")
    plot.set_defaults(command=_plot, command_name="plot")

    defaults = RunConfig()
    parts = commands.add_parser("partitions", help="draw how a data set's labels are split across clients",
                                description="Draw the label distribution of a simulation's partitions.")
    parts.add_argument("--dataset", default=defaults.dataset, help="built-in data set (default: %(default)s)")
    parts.add_argument("--partition", default=defaults.partition, help="iid, dirichlet or shards "
                       "(default: %(default)s)")
    parts.add_argument("--clients", type=int, default=defaults.clients, help="clients (default: %(default)s)")
    parts.add_argument("--alpha", type=float, default=defaults.alpha, help="Dirichlet concentration "
                       "(default: %(default)s)")
    parts.add_argument("--shards-per-client", type=int, default=defaults.shards_per_client,
                       help="shards per client (default: %(default)s)")
    parts.add_argument("--seed", type=int, default=defaults.seed, help="partition seed (default: %(default)s)")
    parts.add_argument("--out", type=Path, default=Path("partitions.png"), help="PNG file (default: %(default)s)")
    parts.set_defaults(command=_partitions, command_name="partitions")

    exp = commands.add_parser("export", help="export a run's final model for devices (ONNX)",
                              description="Write the final global model as ONNX with the scaler and "
                              "softmax folded in: a device feeds raw features and gets probabilities.")
    exp.add_argument("run", type=Path, help="run folder holding model.pt, or the path of a model.pt")
    exp.add_argument("--format", choices=["onnx"], default="onnx", help="file format (default: %(default)s)")
    exp.add_argument("--quantize", choices=["int8"], help="int8 weights (dynamic quantisation): smaller file")
    exp.add_argument("--out", type=Path, help="output file (default: model.onnx or model.int8.onnx "
                     "next to model.pt)")
    exp.set_defaults(command=_export, command_name="export")

    pred = commands.add_parser("predict", help="predict classes for a CSV with an exported ONNX model",
                               description="Run an exported model on ONNX Runtime (no torch needed). "
                               "CSV columns are matched to the model's features by name.")
    pred.add_argument("--model", required=True, type=Path, help="ONNX file written by `fedge export`")
    pred.add_argument("--data", required=True, type=Path, help="CSV with a header row naming the features")
    pred.add_argument("--out", type=Path, help="predictions CSV (default: standard output)")
    pred.add_argument("--label-column", default="label", help="a label column to ignore if present "
                      "(default: %(default)s)")
    pred.set_defaults(command=_predict, command_name="predict")

    crt = commands.add_parser("certs", help="create a CA, a server certificate and device keys",
                              description="Create what a secured federation needs: ca.pem (give it to "
                              "every device), server.pem/server.key (for --certs), and one ECDSA P-384 key "
                              "pair per --device in DIR/devices (the .pub files go to --authorized-keys).")
    crt.add_argument("folder", type=Path, metavar="DIR", help="where to write the files (must not hold any)")
    crt.add_argument("--host", action="append", required=True, metavar="NAME_OR_IP",
                     help="a name or IP address clients use to reach the server; repeat for several "
                     "(127.0.0.1 and localhost are always added: the server reaches itself there)")
    crt.add_argument("--device", action="append", metavar="NAME", help="create a key pair for this device; "
                     "repeat for several")
    crt.set_defaults(command=_certs, command_name="certs")
    return parser


if __name__ == "__main__":
    sys.exit(main())
