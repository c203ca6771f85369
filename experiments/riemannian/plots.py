"""Figures of a trained Riemannian flow (Chen & Lipman, 2024): data, samples and densities drawn
on the manifold's own chart, with the model density from the Riemannian log-likelihood
(`flowjax.solvers.riemannian_log_likelihood`, Flow Matching Guide section 5) next to the true one.

  torus   (FlatTorus(2)) on the square [0, 2 pi)^2, opposite edges identified.
  sphere  (Sphere(2)) in longitude / latitude (equirectangular; density w.r.t. area on the sphere,
          so the poles are not inflated), plus the samples on the sphere in 3D.

Usage, after `python -m flowjax.main --config=configs/riemannian/<torus|sphere>.py --workdir=W`:

    python experiments/riemannian/plots.py --config=configs/riemannian/torus.py --workdir=W \\
        --out=experiments/riemannian/torus.png

It reads W/samples.npy and W/trajectories.npy (written by the run's sampling) and the newest
checkpoint in W (for the model density on a grid).
"""

from __future__ import annotations

import argparse
import math

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from flowjax import data  # noqa: E402
from flowjax.manifolds import FlatTorus, Sphere  # noqa: E402
from flowjax.train import inference, load_config_file  # noqa: E402

GRID = 120  # points per side of the density grids


def model_log_density(config, workdir: str, points: np.ndarray) -> np.ndarray:
    """log p_1 of the trained flow (EMA parameters) at `points` (n, ambient_dim)."""
    flow = inference.load_trained_flow(config, workdir)
    log_p = flow.compile(flow.run.objective.log_likelihood())
    return inference.map_batches(
        log_p, {"x": points}, config.evaluate.batch_size, flow.run.mesh, jax.random.key(0)
    )


def _density_panel(ax, density, extent, title, xlabel, ylabel=""):
    image = ax.imshow(density, origin="lower", extent=extent, aspect="auto", cmap="viridis")
    plt.colorbar(image, ax=ax, fraction=0.046)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)


def plot_torus(config, workdir: str, samples: np.ndarray, out: str) -> None:
    axis = (np.arange(GRID) + 0.5) * 2 * math.pi / GRID
    grid = np.stack(np.meshgrid(axis, axis), axis=-1).reshape(-1, 2).astype(np.float32)
    true = np.exp(np.asarray(data.log_density(config.data.name, grid))).reshape(GRID, GRID)
    model = np.exp(model_log_density(config, workdir, grid)).reshape(GRID, GRID)
    reference = data.toy_batch(config.data.name, len(samples), seed=config.evaluate.seed, index=0)
    square = (0.0, 2 * math.pi, 0.0, 2 * math.pi)
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.6), constrained_layout=True)
    for ax, points, title in ((axes[0], reference, "data"), (axes[1], samples, "model samples")):
        ax.hist2d(points[:, 0], points[:, 1], bins=100, range=[square[:2], square[2:]])
        ax.set(title=f"{title} ({len(points)})", xlabel="theta_1", ylabel="theta_2")
    _density_panel(axes[2], true, square, "true density", "theta_1", "theta_2")
    _density_panel(axes[3], model, square, "model density (Riemannian likelihood)", "theta_1")
    for ax in axes:
        ax.set_aspect("equal")
    fig.suptitle("Riemannian flow matching on the flat torus T^2 = [0, 2 pi)^2")
    fig.savefig(out, dpi=90)
    plt.close(fig)


def _lon_lat(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.arctan2(x[:, 1], x[:, 0]), np.arcsin(np.clip(x[:, 2], -1.0, 1.0))


def plot_sphere(config, workdir: str, samples: np.ndarray, out: str) -> None:
    lon = (np.arange(2 * GRID) + 0.5) * 2 * math.pi / (2 * GRID) - math.pi
    lat = (np.arange(GRID) + 0.5) * math.pi / GRID - math.pi / 2
    lo, la = np.meshgrid(lon, lat)
    grid = np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=-1)
    grid = grid.reshape(-1, 3).astype(np.float32)
    true = np.exp(np.asarray(data.log_density(config.data.name, grid))).reshape(GRID, 2 * GRID)
    model = np.exp(model_log_density(config, workdir, grid)).reshape(GRID, 2 * GRID)
    reference = data.toy_batch(config.data.name, len(samples), seed=config.evaluate.seed, index=0)
    chart = (-180.0, 180.0, -90.0, 90.0)
    fig = plt.figure(figsize=(22, 9), constrained_layout=True)
    layout = fig.add_gridspec(2, 3, width_ratios=(1, 1, 0.9))
    panels = np.asarray([[fig.add_subplot(layout[r, c]) for c in range(2)] for r in range(2)])
    for ax, points, title in (
        (panels[0, 0], reference, "data"),
        (panels[0, 1], samples, "model samples"),
    ):
        lo_p, la_p = _lon_lat(points)
        ax.hist2d(np.degrees(lo_p), np.degrees(la_p), bins=(120, 60), range=[chart[:2], chart[2:]])
        ax.set(title=f"{title} ({len(points)})", xlabel="longitude", ylabel="latitude")
    _density_panel(panels[1, 0], true, chart, "true density (per unit area)", "longitude",
                   "latitude")
    _density_panel(panels[1, 1], model, chart, "model density (Riemannian likelihood)", "longitude")
    ax3d = fig.add_subplot(layout[:, 2], projection="3d")
    shown = samples[:4000]
    ax3d.scatter(*shown.T, s=2, alpha=0.8, c=shown[:, 2], cmap="coolwarm")
    ax3d.view_init(elev=20, azim=-60)
    ax3d.set(title="model samples on S^2", xlim=(-1, 1), ylim=(-1, 1), zlim=(-1, 1))
    ax3d.set_box_aspect((1, 1, 1))
    fig.suptitle("Riemannian flow matching on the sphere S^2")
    fig.savefig(out, dpi=80)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="configs/riemannian/<torus|sphere>.py")
    parser.add_argument("--workdir", required=True, help="the work directory of the trained run")
    parser.add_argument("--out", required=True, help="the PNG to write")
    args = parser.parse_args()
    path, _, variant = args.config.partition(":")
    config = load_config_file(path, variant or None)
    samples = np.load(f"{args.workdir}/{inference.SAMPLES_FILE}")
    manifold = data.toy_manifold(config.data.name)
    if isinstance(manifold, FlatTorus):
        plot_torus(config, args.workdir, samples, args.out)
    elif isinstance(manifold, Sphere):
        plot_sphere(config, args.workdir, samples, args.out)
    else:
        raise ValueError(f"No figure for the data {config.data.name!r} (torus or sphere toys).")
    print(f"Wrote {args.out}")


if __name__ == "__main__":
    main()
