"""Pictures of runs and partitions, drawn headless (Agg) straight to PNG files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on edge boxes and CI; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fedge.results import read_metrics  # noqa: E402


def plot_runs(run_dirs: Sequence[Path], out: Path, labels: Sequence[str] | None = None,
              title: str = "", target: float | None = None) -> Path:
    """Accuracy and loss per round of one or more runs, side by side, one line per run.

    Server-side test metrics when the run has them (built-in data sets), else the
    clients' validation metrics.
    """
    labels = list(labels) if labels else [Path(d).name for d in run_dirs]
    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for run_dir, label in zip(run_dirs, labels):
        rows = read_metrics(Path(run_dir))
        prefix = "test-" if "test-accuracy" in rows[0] else "client-"
        rounds = [r["round"] for r in rows]
        acc_ax.plot(rounds, [r[prefix + "accuracy"] for r in rows], label=label)
        loss_ax.plot(rounds, [r[prefix + "loss"] for r in rows], label=label)
    if target is not None:
        acc_ax.axhline(target, color="grey", linestyle=":", label=f"target {target:.2f}")
    acc_ax.set(xlabel="round", ylabel="accuracy")
    loss_ax.set(xlabel="round", ylabel="loss", yscale="log")
    acc_ax.legend(fontsize=8)
    for ax in (acc_ax, loss_ax):
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return _save(fig, out)


def plot_label_distribution(partitions: Sequence[np.ndarray], labels: np.ndarray, out: Path,
                            title: str = "") -> Path:
    """Stacked bars: how many rows of each class every client holds."""
    classes = sorted(set(labels.tolist()), key=_class_order)
    counts = np.array([[np.sum(labels[rows] == c) for c in classes] for rows in partitions])
    fig, ax = plt.subplots(figsize=(max(6.0, 0.12 * len(partitions) + 3), 4))
    bottom = np.zeros(len(partitions))
    colours = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for i, c in enumerate(classes):
        ax.bar(np.arange(len(partitions)), counts[:, i], bottom=bottom, width=0.9, label=str(c),
               color=colours(i % colours.N))
        bottom += counts[:, i]
    ax.set(xlabel="client", ylabel="rows", title=title)
    ax.legend(title="class", fontsize=7, ncol=2, bbox_to_anchor=(1.01, 1), loc="upper left")
    return _save(fig, out)


def _class_order(label: str) -> tuple[int, float | str]:
    try:
        return (0, float(label))
    except ValueError:
        return (1, label)


def _save(fig: plt.Figure, out: Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
