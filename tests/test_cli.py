"""Bad input to the `fedge` command: one clear line, no traceback, non-zero exit, nothing started."""

from pathlib import Path

import pytest

from fedge.config import STRATEGIES


def _fails(result, message: str) -> None:
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [message]


def test_client_without_data_stops_with_one_clear_error(fedge):
    result = fedge.run(["client", "--server", "127.0.0.1:9"], timeout=60)
    _fails(result, "fedge client: error: this client has no data: give --data FILE (CSV or NPZ), or "
                   "--dataset NAME --partition-id I --num-partitions N for a demo")


def test_client_with_a_missing_file_stops_with_one_clear_error(fedge, tmp_path: Path):
    result = fedge.run(["client", "--server", "127.0.0.1:9", "--data", str(tmp_path / "none.csv")], timeout=60)
    _fails(result, f"fedge client: error: {tmp_path / 'none.csv'}: file does not exist")


def test_client_with_a_bad_cell_names_line_and_column(fedge, tmp_path: Path):
    (tmp_path / "d.csv").write_text("a,b,label\n1,2,x\n3,oops,y\n")
    result = fedge.run(["client", "--server", "127.0.0.1:9", "--data", str(tmp_path / "d.csv")], timeout=60)
    _fails(result, f"fedge client: error: {tmp_path / 'd.csv'}, line 3, column 2 ('b'): 'oops' is not a number")
    assert (tmp_path / "d.csv").read_text() == "a,b,label\n1,2,x\n3,oops,y\n"


def test_server_with_a_bad_test_file_stops_before_anything_starts(fedge, tmp_path: Path):
    (tmp_path / "test.csv").write_text("a,b,label\n1,2,x\n3,oops,y\n")
    result = fedge.run(["server", "--address", "127.0.0.1:9", "--test-data", str(tmp_path / "test.csv"),
                        "--out", str(tmp_path / "runs")], timeout=60)
    _fails(result, f"fedge server: error: {tmp_path / 'test.csv'}, line 3, column 2 ('b'): 'oops' is not a number")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test.csv"]  # no run folder


@pytest.mark.parametrize("args,message", [
    (["simulate", "--rounds", "-1"], "fedge simulate: error: --rounds -1 is not valid: expected a whole number ≥ 1"),
    (["simulate", "--fraction-train", "1.5"],
     "fedge simulate: error: --fraction-train 1.5 is not valid: expected a number in (0, 1]"),
    (["simulate", "--dataset", "imagenet"], "fedge simulate: error: --dataset 'imagenet' is not valid: expected "
                                            "one of iris, wine, breast-cancer, digits, mnist, shuttle, basicmotions"),
    (["simulate", "--rounds", "two"], "fedge simulate: error: --rounds 'two' is not valid: expected int"),
    (["server", "--address", "localhost"],
     "fedge server: error: address 'localhost' is not HOST:PORT (e.g. 127.0.0.1:9092)"),
    (["server", "--address", "10.1.2.3:9092"],
     "fedge server: error: 10.1.2.3 is not a loopback address: an unencrypted connection would expose model "
     "updates on the network. Use TLS (`fedge certs`, then --certs on the server, --root-cert on clients) or "
     "pass --insecure to accept that explicitly."),
    (["simulate", "--strategy", "fedfoo"],
     f"fedge simulate: error: --strategy 'fedfoo' is not valid: expected one of {', '.join(STRATEGIES)}"),
    (["simulate", "--fraction-evaluate", "0"],
     "fedge simulate: error: --fraction-evaluate 0.0 is not valid: expected a number in (0, 1]"),
    (["simulate", "--clients", "1", "--secagg", "true"],
     "fedge simulate: error: --secagg true needs at least 2 clients per round (--min-clients, or --clients in a "
     "simulation): a sum over one client is that client's update"),
    (["simulate", "--max-update-norm", "-1"],
     "fedge simulate: error: --max-update-norm -1.0 is not valid: expected a number ≥ 0 (0: no limit)"),
    (["server", "--address", "127.0.0.1:9", "--test-data", "missing.csv"],
     "fedge server: error: missing.csv: file does not exist"),
    (["server", "--round-timeout", "0"],
     "fedge server: error: --round-timeout 0.0 is not valid: expected a number of seconds > 0"),
    (["server", "--resume", "nowhere"], "fedge server: error: {tmp}/nowhere is not a fedge run folder "
                                        "(it has no run-config.toml)"),
    (["server", "--resume", "nowhere", "--rounds", "3"],
     "fedge server: error: --resume continues the run with its own options (from its run-config.toml); drop "
     "the other run options"),
    (["client", "--server", "127.0.0.1:9092", "--dataset", "digits", "--partition-id", "0", "--num-partitions", "2",
      "--poll-interval", "0"], "fedge client: error: --poll-interval 0 is not in (0, 60] seconds"),
    (["client", "--server", "localhost", "--dataset", "digits", "--partition-id", "0", "--num-partitions", "2"],
     "fedge client: error: address 'localhost' is not HOST:PORT (e.g. 127.0.0.1:9092)"),
    (["client", "--server", "10.1.2.3:9092", "--dataset", "digits", "--partition-id", "0", "--num-partitions", "2"],
     "fedge client: error: 10.1.2.3 is not a loopback address: an unencrypted connection would expose model "
     "updates on the network. Use TLS (`fedge certs`, then --certs on the server, --root-cert on clients) or "
     "pass --insecure to accept that explicitly."),
])
def test_bad_options_are_refused_before_anything_starts(fedge, tmp_path: Path, args, message):
    out = [] if args[0] == "client" or "--resume" in args else ["--out", str(tmp_path)]
    result = fedge.run([*args, *out], timeout=60, cwd=tmp_path)
    _fails(result, message.replace("{tmp}", str(tmp_path)))
    assert list(tmp_path.iterdir()) == []
