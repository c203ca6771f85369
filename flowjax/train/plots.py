"""PNG figures of a trained 2D flow: samples, trajectories from noise to data, model density.

Matplotlib with the non-interactive Agg backend (no display needed). `extent` is the half-width
L of the square [-L, L]^2 that every panel shows.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (after selecting the backend)
import numpy as np  # noqa: E402


def plot_extent(*point_sets: np.ndarray, quantile: float = 0.995, margin: float = 1.1) -> float:
    """A half-width covering the central `quantile` of all coordinates of the points, padded."""
    coords = np.abs(np.concatenate([p.reshape(-1) for p in point_sets]))
    return float(margin * np.quantile(coords, quantile))


def plot_samples(
    filename: str, samples: np.ndarray, reference: np.ndarray, extent: float, bins: int = 200
) -> None:
    """2D histograms of data points (left) and model samples (right), each of shape (n, 2)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 5), constrained_layout=True)
    box = [[-extent, extent], [-extent, extent]]
    for ax, points, title in ((axes[0], reference, "data"), (axes[1], samples, "model samples")):
        ax.hist2d(points[:, 0], points[:, 1], bins=bins, range=box, cmap="viridis")
        ax.set_title(f"{title} ({len(points)})")
        ax.set_aspect("equal")
    fig.savefig(filename, dpi=100, bbox_inches="tight", pad_inches=0.15)
    plt.close(fig)


def plot_trajectories(
    filename: str, trajectories: np.ndarray, times: np.ndarray, extent: float, num_paths: int = 50
) -> None:
    """Snapshots of x_t at each of `times` (trajectories: (T, n, 2)), and some whole paths."""
    num_times = len(times)
    fig, axes = plt.subplots(
        1, num_times + 1, figsize=(3 * (num_times + 1), 3.2), constrained_layout=True
    )
    for ax, x_t, t in zip(axes, trajectories, times, strict=False):
        ax.scatter(x_t[:, 0], x_t[:, 1], s=1, alpha=0.5)
        ax.set_title(f"t = {t:.2f}")
    paths = trajectories[:, :num_paths]
    axes[-1].plot(paths[:, :, 0], paths[:, :, 1], lw=0.6, alpha=0.7)
    axes[-1].scatter(paths[-1, :, 0], paths[-1, :, 1], s=4, c="k")
    axes[-1].set_title("paths (dots at t = 1)")
    for ax in axes:
        ax.set_xlim(-extent, extent)
        ax.set_ylim(-extent, extent)
        ax.set_aspect("equal")
    fig.savefig(filename, dpi=100, bbox_inches="tight", pad_inches=0.15)
    plt.close(fig)


def plot_density(filename: str, log_density: np.ndarray, extent: float, title: str) -> None:
    """The model density exp(log p) on a square grid (log_density: (G, G), rows along y)."""
    fig, ax = plt.subplots(figsize=(5.5, 5), constrained_layout=True)
    image = ax.imshow(
        np.exp(log_density),
        origin="lower",
        extent=(-extent, extent, -extent, extent),
        cmap="viridis",
    )
    fig.colorbar(image, ax=ax, label="model density")
    ax.set_title(title)
    fig.savefig(filename, dpi=100, bbox_inches="tight", pad_inches=0.15)
    plt.close(fig)
