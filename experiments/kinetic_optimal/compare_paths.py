"""Discrete paths on the 2D discrete checkerboard: samples and ELBO per path.

Flow Matching with General Discrete Paths: A Kinetic-Optimal Perspective (Shaul et al., 2024) and
the Flow Matching Guide's 2D discrete example (Lipman et al., 2024, section 7). Trains, samples and
evaluates one model per path with the command line (`python -m flowjax.main`), then draws:

  samples.png       the data and every run's samples (2D histograms over the 128 x 128 cells);
  trajectories.png  every run's states at t = 0, 0.2, ..., 1 (points with a masked coordinate
                    left out; the fraction still masked in the titles);
  elbo.png          the ELBO of held-out points in bits per token per run, next to the true
                    entropy 6.5 bits per token (bars: two standard errors);
  results.json      the metrics and commands of every run.

Runs (configs/fm_guide/discrete_checkerboard.py and configs/kinetic_optimal/checkerboard.py):
  guide_mask     mixture path, kappa = t^2, mask source (the Guide's example)
  guide_uniform  mixture path, kappa = t^2, uniform source
  ko_mask        kinetic-optimal mixture path of the mask source, kappa = sin^2(pi t / 2)
  ko_uniform     kinetic-optimal mixture path of the uniform source
  metric         metric-induced path, d = |x - y| / 16, beta_t = 3 (t / (1 - t))^0.9

    python experiments/kinetic_optimal/compare_paths.py                 # the demo size
    python experiments/kinetic_optimal/compare_paths.py --size=         # the paper size
    python experiments/kinetic_optimal/compare_paths.py --only=metric   # one run

Work directories go to --workdir (default workdirs/kinetic_optimal/<size>/<run>); rerunning
resumes or reuses finished runs (training continues from the newest checkpoint).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (after selecting the backend)

REPO = Path(__file__).resolve().parents[2]
RUNS = {
    "guide_mask": ("configs/fm_guide/discrete_checkerboard.py", "mask"),
    "guide_uniform": ("configs/fm_guide/discrete_checkerboard.py", "uniform"),
    "ko_mask": ("configs/kinetic_optimal/checkerboard.py", "mask"),
    "ko_uniform": ("configs/kinetic_optimal/checkerboard.py", "uniform"),
    "metric": ("configs/kinetic_optimal/checkerboard.py", "metric"),
}
NUM_BINS, MASK, TRUE_BITS = 128, 128, 6.5
TIMES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


def run_cli(name: str, size: str, workdir: Path) -> dict:
    """Trains, samples and evaluates one run with the command line; returns its record."""
    config_file, variant = RUNS[name]
    arg = f"{variant},{size}" if size else variant
    shown = workdir.relative_to(REPO) if workdir.is_relative_to(REPO) else workdir
    command = [
        sys.executable,
        "-m",
        "flowjax.main",
        f"--config={config_file}:{arg}",
        f"--workdir={shown}",
        "--mode=train",
    ]
    print("$", " ".join(command[1:]), flush=True)
    subprocess.run(command, cwd=REPO, check=True)
    with open(workdir / "metrics.json") as f:
        metrics = json.load(f)
    with open(workdir / "sample_metrics.json") as f:
        sample_metrics = json.load(f)
    return {
        "command": "python " + " ".join(command[1:]),
        "metrics": metrics,
        "sampling": sample_metrics,
    }


def histogram(tokens: np.ndarray) -> np.ndarray:
    counts = np.zeros((NUM_BINS, NUM_BINS))
    keep = np.all(tokens < NUM_BINS, axis=1)
    np.add.at(counts, (tokens[keep, 1], tokens[keep, 0]), 1.0)  # rows along y
    return counts


def plot_samples(filename: Path, runs: dict[str, Path]) -> None:
    from flowjax import data

    reference = data.toy_batch("discrete_checkerboard", 20_000, seed=12345, index=0)
    panels = {"data": reference} | {name: np.load(w / "samples.npy") for name, w in runs.items()}
    fig, axes = plt.subplots(
        1, len(panels), figsize=(3.2 * len(panels), 3.4), constrained_layout=True
    )
    for ax, (name, tokens) in zip(np.atleast_1d(axes), panels.items()):
        ax.imshow(histogram(tokens), origin="lower", cmap="viridis", interpolation="nearest")
        ax.set_title(f"{name} ({len(tokens)})")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.savefig(filename, dpi=110)
    plt.close(fig)


def plot_trajectories(filename: Path, runs: dict[str, Path]) -> None:
    fig, axes = plt.subplots(
        len(runs),
        len(TIMES),
        figsize=(2.2 * len(TIMES), 2.3 * len(runs)),
        constrained_layout=True,
        squeeze=False,
    )
    for row, (name, workdir) in zip(axes, runs.items()):
        trajectories = np.load(workdir / "trajectories.npy")  # (times, points, 2)
        for ax, x_t, t in zip(row, trajectories, TIMES):
            unmasked = np.all(x_t != MASK, axis=1)
            ax.scatter(x_t[unmasked, 0], x_t[unmasked, 1], s=1, alpha=0.5)
            ax.set_xlim(0, NUM_BINS)
            ax.set_ylim(0, NUM_BINS)
            ax.set_xticks([])
            ax.set_yticks([])
            masked = 1.0 - unmasked.mean()
            ax.set_title(
                f"t={t:.1f}" + (f", {masked:.0%} masked" if masked > 0 else ""), fontsize=8
            )
        row[0].set_ylabel(name)
    fig.savefig(filename, dpi=100)
    plt.close(fig)


def plot_elbo(filename: Path, records: dict[str, dict]) -> None:
    names = list(records)
    bits = [records[n]["metrics"]["nelbo_bits_per_token"] for n in names]
    # Two standard errors of the mean per-point ELBO, in bits per token (2 tokens per point).
    errors = [2 * records[n]["metrics"]["nelbo_nats_stderr"] / (2 * math.log(2.0)) for n in names]
    fig, ax = plt.subplots(figsize=(1.4 * len(names) + 2, 3.6), constrained_layout=True)
    ax.bar(names, bits, yerr=errors, capsize=4, color="tab:blue")
    ax.axhline(TRUE_BITS, color="k", ls="--", lw=1, label="true entropy (6.5)")
    ax.set_ylim(TRUE_BITS - 0.5, max(bits) + 0.5)
    ax.set_ylabel("-ELBO, bits per token")
    ax.legend(loc="upper right")
    for i, (b, e) in enumerate(zip(bits, errors)):
        ax.text(i + 0.1, b + e + 0.03, f"{b:.3f}", ha="left", fontsize=8)
    fig.savefig(filename, dpi=110)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="demo", help="config size: demo, smoke or '' (paper)")
    parser.add_argument("--only", default=None, help=f"comma-separated runs among {list(RUNS)}")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",")] if args.only else list(RUNS)
    unknown = sorted(set(names) - set(RUNS))
    if unknown:
        parser.error(f"unknown runs {unknown}; choose among {list(RUNS)}")
    root = args.workdir or REPO / "workdirs" / "kinetic_optimal" / (args.size or "paper")
    workdirs = {name: root / name for name in names}
    records = {name: run_cli(name, args.size, workdirs[name]) for name in names}

    args.out.mkdir(parents=True, exist_ok=True)
    plot_samples(args.out / "samples.png", workdirs)
    plot_trajectories(args.out / "trajectories.png", workdirs)
    plot_elbo(args.out / "elbo.png", records)
    results = args.out / "results.json"
    results.write_text(json.dumps({"size": args.size or "paper", "runs": records}, indent=1) + "\n")
    for name, record in records.items():
        m = record["metrics"]
        print(
            f"{name:<14} -ELBO {m['nelbo_bits_per_token']:.3f} bits/token "
            f"(true {m['true_nll_bits_per_token']:.3f}), in support {m['fraction_in_support']:.4f}"
        )
    print(f"Wrote {args.out}/samples.png, trajectories.png, elbo.png, results.json")


if __name__ == "__main__":
    main()
