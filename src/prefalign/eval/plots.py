"""PNG plots with matplotlib's Agg back end (no display needed). Each function writes one file
and returns its path."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def line_plot(path: Path, x: Sequence[float], series: Mapping[str, Sequence[float]], *,
              title: str, xlabel: str = "step", ylabel: str = "") -> Path:
    """One line per series, against ``x`` (None values are skipped)."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, ys in series.items():
        pts = [(a, b) for a, b in zip(x, ys) if b is not None]
        if pts:
            ax.plot([a for a, _ in pts], [b for _, b in pts], label=name,
                    marker="o" if len(pts) < 20 else None, markersize=3)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def scatter_plot(path: Path, x: Sequence[float], y: Sequence[float], *, title: str,
                 xlabel: str, ylabel: str) -> Path:
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(x, y, marker="o", markersize=3)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def histogram(path: Path, groups: Mapping[str, Sequence[float]], *, title: str,
              xlabel: str) -> Path:
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, values in groups.items():
        if values:
            ax.hist(values, bins=min(30, max(5, len(set(values)))), alpha=0.5, label=name)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def reliability_plot(path, bins: Sequence[Mapping], *, ece: float) -> Path:
    """The reliability diagram: each confidence bin's accuracy against its mean confidence,
    with the diagonal of perfect calibration."""
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0.5, 1.0], [0.5, 1.0], linestyle="--", color="grey", label="calibrated")
    ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], marker="o",
            label="model")
    ax.set_xlim(0.5, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_title(f"reliability (ECE {ece:.3f})")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
