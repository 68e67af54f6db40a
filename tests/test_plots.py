"""`fedge plot` and `fedge partitions` write real PNG files."""

from pathlib import Path

from fedge.cli import main
from fedge.results import RunFolder

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run(folder: Path, accuracies: list[float]) -> Path:
    RunFolder(folder).write_metrics([{"round": i + 1, "test-accuracy": a, "test-loss": 1 - a}
                                     for i, a in enumerate(accuracies)])
    return folder


def _is_png(path: Path) -> bool:
    return path.stat().st_size > 10_000 and path.read_bytes()[:8] == PNG_MAGIC


def test_plot_draws_several_runs_on_one_figure(tmp_path: Path, capsys):
    a, b = _run(tmp_path / "a", [0.3, 0.6, 0.8]), _run(tmp_path / "b", [0.2, 0.4, 0.5])
    assert main(["plot", str(a), str(b), "--out", str(tmp_path / "runs.png")]) == 0
    assert _is_png(tmp_path / "runs.png")
    assert capsys.readouterr().out == f"fedge: wrote {tmp_path / 'runs.png'}\n"


def test_plot_refuses_a_folder_without_metrics(tmp_path: Path, capsys):
    assert main(["plot", str(tmp_path), "--out", str(tmp_path / "x.png")]) == 2
    assert capsys.readouterr().err == (f"fedge plot: error: no metrics.json in {tmp_path}: give run folders "
                                       "(e.g. runs/digits-iid-20250101-120000)\n")
    assert not (tmp_path / "x.png").exists()


def test_partitions_draws_the_label_distribution(tmp_path: Path):
    out = tmp_path / "parts.png"
    assert main(["partitions", "--dataset", "digits", "--partition", "dirichlet", "--alpha", "0.1",
                 "--clients", "20", "--out", str(out)]) == 0
    assert _is_png(out)


def test_partitions_refuses_bad_options(tmp_path: Path, capsys):
    assert main(["partitions", "--partition", "random", "--out", str(tmp_path / "p.png")]) == 2
    assert capsys.readouterr().err == ("fedge partitions: error: --partition 'random' is not valid: "
                                       "expected one of iid, dirichlet, shards\n")
