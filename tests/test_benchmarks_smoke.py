"""Every benchmark keeps running (tiny sizes; no timing is asserted)."""

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_inference.py"


def test_inference_benchmark_smoke(tmp_path: Path) -> None:
    out = tmp_path / "BENCHMARKS.md"
    others = "# Benchmarks\n\n## Someone else's section\n\nkept\n\n"
    out.write_text(f"{others}<!-- inference:start -->\nold numbers\n<!-- inference:end -->\n\n## After\n")
    result = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--out", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert text.startswith(f"{others}<!-- inference:start -->\n## Edge inference (issue 6)\n")
    assert text.endswith("<!-- inference:end -->\n\n## After\n")
    assert "old numbers" not in text
    for runtime in ("torch eager", "ONNX Runtime float", "ONNX Runtime int8"):
        assert text.count(f"| {runtime} |") == 2  # one row per model


def _run_benchmark(script: str, out: Path, *args: str) -> str:
    result = subprocess.run([sys.executable, str(SCRIPT.with_name(script)), "--repeats", "1", *args,
                             "--out", str(out)], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out.read_text()


@pytest.mark.slow
def test_simulation_benchmark_smoke(tmp_path: Path) -> None:
    text = _run_benchmark("bench_simulation.py", tmp_path / "B.md", "--clients", "6", "--rounds", "4",
                          "--fraction", "0.5")
    assert "## Simulation cost (issue 4)" in text
    for row in ("| fedge |", "| plain Flower (default resources) |", "| plain Flower (1 CPU per client) |",
                "| compute floor"):
        assert row in text


@pytest.mark.slow
def test_deployment_benchmark_smoke(tmp_path: Path) -> None:
    text = _run_benchmark("bench_deployment.py", tmp_path / "B.md", "--rounds", "3")
    assert "## Deployment round overhead (issue 4)" in text
    assert "| fedge | 1 |" in text and "| plain Flower | 2 |" in text


@pytest.mark.slow
def test_wire_benchmark_smoke(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(SCRIPT.with_name("bench_wire.py")), "--rounds", "2",
                             "--models", "default", "--repeats", "1", "--out", str(tmp_path / "B.md")],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    text = (tmp_path / "B.md").read_text()
    assert "| default | 8,970 | int8 |" in text


@pytest.mark.slow
def test_scale_benchmark_smoke(tmp_path: Path) -> None:
    text = _run_benchmark("bench_scale.py", tmp_path / "B.md", "--totals", "20", "--per-round", "5",
                          "--per-round-curve", "5", "--curve-total", "20", "--rounds", "3")
    assert "## Scale: virtual clients (issue 4)" in text
    row = next(line for line in text.splitlines() if line.startswith("| 20 | 5 |"))
    assert row.count("|") == 9 and row.endswith("× |")  # fedge's numbers and the Flower-dispatch baseline


def test_engine_memory_benchmark_smoke(tmp_path: Path) -> None:
    text = _run_benchmark("bench_engine_memory.py", tmp_path / "B.md", "--totals", "200")
    assert "## Engine memory per virtual client (issue 4)" in text
    row = next(line for line in text.splitlines() if line.startswith("| 200 |"))
    flower, fedge = (float(cell.split()[0]) for cell in row.split("|")[3:5])
    assert 0 < fedge < flower / 2  # Flower keeps a run config per client called, fedge one per run
