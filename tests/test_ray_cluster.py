"""`fedge simulate --ray-address` attaches to a Ray head started here, on 127.0.0.1, then stopped."""

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fedge.processes import free_port
from fedge.results import read_metrics
from tests.processes import Tagged

pytestmark = pytest.mark.slow
RAY = str(Path(sys.executable).with_name("ray"))


def test_simulation_attaches_to_an_existing_ray_head(tmp_path: Path):
    tagged = Tagged()
    port, head_tmp = free_port(), Path("/tmp") / f"fedge-test-ray-{tagged.tag[:8]}"  # short: socket paths
    head = subprocess.Popen([RAY, "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
                             "--port", str(port), "--num-cpus", "2", "--include-dashboard", "false",
                             "--disable-usage-stats", "--temp-dir", str(head_tmp)], env=tagged.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    tagged.started.append(head)
    try:
        time.sleep(8)  # the head's GCS and raylet come up
        assert head.poll() is None, "ray start --head exited"
        logs = head_tmp / "session_latest" / "logs"
        workers_before = len(list(logs.glob("worker-*")))
        result = tagged.run(["simulate", "--ray-address", f"127.0.0.1:{port}", "--clients", "4", "--rounds", "2",
                             "--out", str(tmp_path), "--name", "attached"], timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        assert [r["train-clients"] for r in read_metrics(tmp_path / "attached")] == [4, 4]
        assert head.poll() is None  # fedge left the cluster it did not start running
        assert len(list(logs.glob("worker-*"))) > workers_before  # the clients ran on this head's workers
    finally:
        tagged.stop_all()
        shutil.rmtree(head_tmp, ignore_errors=True)
    deadline = time.time() + 30
    while tagged.leftovers() and time.time() < deadline:
        time.sleep(1)
    assert tagged.leftovers() == []
