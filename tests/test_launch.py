"""fedge.launch: run folders, and a run that ends without a status says why, from Flower's own logs."""

import json
import os
import re
from pathlib import Path

import pytest

from fedge.config import RunConfig
from fedge.launch import TOKEN_HINT, _follow, _report, prepare_run, run_is_active
from fedge.results import RunFolder

TOKEN_ERROR = ("\x1b[91mERROR \x1b[0m:     [/v1/runtime/pull-task-input][ApiError:1008] "
               "Runtime task-token authentication failed.")


def test_a_run_without_status_reports_flowers_errors_and_a_hint(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "superlink.log").write_text(f"INFO : fine\n{TOKEN_ERROR}\nINFO : shutting down\n")
    (logs / "flwr-run.log").write_text("Successfully started run 7\nStarting logstream for run_id `7`\n")
    folder = RunFolder(tmp_path / "run")
    assert _report(folder, logs, "flwr-run.log") == 1
    assert capsys.readouterr().err == (
        "fedge: run failed before it could report.\n"
        "errors in Flower's logs:\n"
        "  superlink.log: ERROR :     [/v1/runtime/pull-task-input][ApiError:1008] "
        "Runtime task-token authentication failed.\n"
        f"  (hint: {TOKEN_HINT})\n"
        f"last lines of {logs / 'flwr-run.log'}:\n"
        "Successfully started run 7\nStarting logstream for run_id `7`\n")
    assert json.loads((tmp_path / "run" / "status.json").read_text())["status"] == "failed"


def test_without_errors_in_the_logs_only_the_runner_log_is_shown(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "flwr-run.log").write_text("something else\n")
    assert _report(RunFolder(tmp_path / "run"), tmp_path, "flwr-run.log") == 1
    assert capsys.readouterr().err == (f"fedge: run failed before it could report.\n"
                                       f"last lines of {tmp_path / 'flwr-run.log'}:\nsomething else\n")


def _fake_flwr(tmp_path: Path, status: str) -> dict[str, str]:
    """An environment whose `flwr ls` answers like Flower's with one run in `status`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    answer = json.dumps({"success": True, "runs": [{"run-id": "7", "status": status}]})
    script = bin_dir / "flwr"
    script.write_text(f"#!/bin/sh\n[ \"$1 $2 $3 $4\" = 'ls fedge --run-id 7' ] && echo '{answer}'\n")
    script.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


@pytest.mark.parametrize(("status", "active"), [("running", True), ("starting", True),
                                                ("finished:completed", False), ("finished:failed", False)])
def test_run_is_active_asks_flower_about_the_run_flwr_run_started(tmp_path: Path, status: str,
                                                                  active: bool) -> None:
    log = tmp_path / "flwr-run.log"
    log.write_text("Using SuperLink: fedge (127.0.0.1:9092)\nSuccessfully started run 7\n")
    assert run_is_active(_fake_flwr(tmp_path, status), log) is active


def test_a_run_that_never_started_is_not_active(tmp_path: Path) -> None:
    log = tmp_path / "flwr-run.log"
    log.write_text("Connection refused\n")
    env = _fake_flwr(tmp_path, "running")
    assert run_is_active(env, log) is False
    assert run_is_active(env, tmp_path / "missing.log") is False


def test_follow_prints_each_progress_line_once_across_two_follows(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    folder = RunFolder(tmp_path)
    folder.progress("round 1/2")
    printed = _follow(folder, lambda: True, printed=0)  # the stream ended after round 1
    folder.progress("round 2/2")
    folder.write_status("completed")
    assert _follow(folder, lambda: False, printed) == 2
    assert capsys.readouterr().out == "round 1/2\nround 2/2\n"


def test_a_run_without_a_name_is_named_after_its_kind_and_start_time(tmp_path: Path) -> None:
    cfg, run_dir = prepare_run(RunConfig(out=str(tmp_path)), "server")
    assert re.fullmatch(r"server-\d{8}-\d{6}", cfg.name) and run_dir == tmp_path / cfg.name
    assert prepare_run(RunConfig(out=str(tmp_path), name="mine"), "server")[1] == tmp_path / "mine"
    assert list(tmp_path.iterdir()) == []  # naming creates nothing
