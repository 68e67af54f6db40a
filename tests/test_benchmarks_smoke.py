"""The inference benchmark keeps running (tiny sizes; no timing is asserted)."""

import subprocess
import sys
from pathlib import Path

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
