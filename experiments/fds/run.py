"""Flow Divergence Sampler (Cha et al., 2026, arXiv:2604.04646) next to plain ODE sampling.

    python experiments/fds/run.py --config=configs/fds/mixture.py --out=experiments/fds/results
    python experiments/fds/run.py --config=configs/fds/checkerboard.py --out=experiments/fds/results

For every method of `config.methods` and number of uniform steps of `config.num_steps`, samples
the same `num_samples` points x_0 ~ N(0, I) with `flowjax.solvers.ode_sample`, plainly and with
`FlowDivergenceSampler` in each variant of `config.variants` (settings `config.fds`, overridden
by the variant), in batches of `batch_size` (each with its own key, `fold_in(key, batch)`), and
reports:

  in support  mixture: the fraction within `support_num_std` standard deviations of a
              component (`flowjax.metrics.fraction_near_components`); checkerboard: the
              fraction inside the 8 squares (`flowjax.metrics.fraction_in_support`).
  energy      the squared energy distance (`flowjax.metrics.energy_distance`) to `num_data`
              data points: the mean over disjoint chunks of `energy_points` points each.
  passes      passes through the model: forward evaluations + JVP passes
              (`flowjax.solvers.sampling_passes`; each pass is over all the samples).
  wall        the median wall time of `timing_repeats` runs over all batches of the jitted
              sampler (compilation excluded), on whatever device JAX uses.

A first row scores an independent draw of data in the same way (the floor of both metrics).
Writes <out>/<name>.json (all rows and the config), <out>/<name>.md (the table) and
<out>/<name>_samples.png (the samples side by side), <name> = `config.name`.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from flowjax import data, metrics
from flowjax.paths import CondOTProbPath, GaussianMixture, analytic
from flowjax.solvers import FlowDivergenceSampler, ode_sample, sampling_passes

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (after selecting the backend)

_CONFIG = config_flags.DEFINE_config_file("config", None, "configs/fds/<target>.py[:variant]")
_OUT = flags.DEFINE_string("out", "experiments/fds/results", "Directory for the results.")
flags.mark_flags_as_required(["config"])

PATH = CondOTProbPath()


def ring_mixture(num_components: int, radius: float, std: float) -> GaussianMixture:
    """Equal-weight isotropic Gaussians of standard deviation `std` on a circle of `radius`."""
    angle = 2.0 * np.pi * np.arange(num_components) / num_components
    means = radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return GaussianMixture.isotropic(
        weights=np.full(num_components, 1.0 / num_components), means=means, std=std
    )


class Target:
    """What a run samples from and how it is scored.

    velocity(params) -> u(x, t); params: the model's arrays (None for a closed form);
    draw(n, seed) -> n data points; in_support(x) -> fraction; outline(ax) draws the support.
    """

    def __init__(self, config):
        if config.target == "mixture":
            mixture = ring_mixture(**config.mixture)
            self.params = None
            self.velocity = lambda params: lambda x, t: analytic.marginal_velocity(
                PATH, mixture, x, t
            )
            self.draw = lambda n, seed: np.asarray(mixture.sample(jax.random.key(seed), n))
            self.in_support = lambda x: metrics.fraction_near_components(
                mixture, x, config.support_num_std
            )
            radius = config.support_num_std * config.mixture.std
            self.outline = lambda ax: [
                ax.add_patch(plt.Circle(mu, radius, fill=False, lw=0.6, color="k"))
                for mu in np.asarray(mixture.means)
            ]
            self.extent = config.mixture.radius + 2.0 * radius
        elif config.target == "checkerboard":
            from flowjax.train.inference import load_trained_flow
            from flowjax.train.state import ema_model

            try:
                flow = load_trained_flow(config.flow, config.workdir)
            except FileNotFoundError as error:
                raise SystemExit(
                    f"{error}\nTrain the model first: python -m flowjax.main "
                    f"--config=configs/fm_guide/checkerboard.py:demo --workdir={config.workdir}"
                ) from None
            graphdef = flow.run.graphdef
            self.params = flow.state
            self.velocity = lambda state: ema_model(graphdef, state)
            self.draw = lambda n, seed: data.sample_toy(
                "checkerboard", n, np.random.default_rng(seed)
            )
            self.in_support = lambda x: metrics.fraction_in_support("checkerboard", x)
            self.outline = _checkerboard_outline
            self.extent = 4.5
        else:
            raise ValueError(f"Unknown target {config.target!r}; expected mixture or checkerboard.")


def _checkerboard_outline(ax) -> None:
    for col in range(4):
        for row in range(col % 2, 4, 2):
            corner = (-4.0 + 2.0 * col, -4.0 + 2.0 * row)
            ax.add_patch(plt.Rectangle(corner, 2.0, 2.0, fill=False, lw=0.6, color="k"))


def make_sampler(
    target: Target, method: str, num_steps: int, refiner, batch_size: int
) -> Callable:
    """(params, x_0, key) -> x_1 over `num_steps` uniform steps, jitted, batch by batch."""
    grid = tuple(np.linspace(0.0, 1.0, num_steps + 1))

    @jax.jit
    def sample_batch(params, x_0, key):
        return ode_sample(
            target.velocity(params), x_0, method=method, time_grid=grid, refiner=refiner, key=key
        )

    def sample(params, x_0, key):
        starts = range(0, len(x_0), batch_size)
        return jnp.concatenate(
            [
                sample_batch(params, x_0[i : i + batch_size], jax.random.fold_in(key, b))
                for b, i in enumerate(starts)
            ]
        )

    return sample


def timed(fn: Callable, *args, repeats: int) -> tuple[np.ndarray, float]:
    """fn(*args) as a NumPy array and its median wall time over `repeats` runs after a warm-up."""
    out = jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return np.asarray(out), float(np.median(times))


def chunked_energy_distance(samples: np.ndarray, reference: np.ndarray, chunk: int) -> float:
    """The mean energy distance over disjoint chunks of `chunk` points of both sets."""
    num = min(len(samples), len(reference)) // chunk
    return float(
        np.mean(
            [
                metrics.energy_distance(
                    samples[i * chunk : (i + 1) * chunk], reference[i * chunk : (i + 1) * chunk]
                )
                for i in range(num)
            ]
        )
    )


def run(config) -> dict[str, Any]:
    target = Target(config)
    key_x0, key_fds = jax.random.split(jax.random.key(config.seed))
    x_0 = jax.random.normal(key_x0, (config.num_samples, 2))
    reference = target.draw(config.num_data, 2 * config.seed + 101)
    independent = target.draw(config.num_samples, 2 * config.seed + 102)
    variants = [None, *config.variants]

    def score(samples):
        return {
            "in_support": target.in_support(samples),
            "energy_distance": chunked_energy_distance(samples, reference, config.energy_points),
        }

    rows = [{"method": "data", "steps": None, "fds": None, **score(independent)}]
    samples = {}
    for method in config.methods:
        for num_steps in config.num_steps:
            for variant in variants:
                refiner = None if variant is None else FlowDivergenceSampler(
                    **{**config.fds, **variant}
                )
                sampler = make_sampler(target, method, num_steps, refiner, config.batch_size)
                x_1, wall = timed(
                    sampler, target.params, x_0, key_fds, repeats=config.timing_repeats
                )
                passes = sampling_passes(
                    method, 2, time_grid=np.linspace(0.0, 1.0, num_steps + 1), refiner=refiner
                )
                row = {
                    "method": method,
                    "steps": num_steps,
                    "fds": variant_label(variant),
                    **score(x_1),
                    "forward_passes": passes.forward,
                    "jvp_passes": passes.jvp,
                    "wall_s": wall,
                }
                print(row, flush=True)
                rows.append(row)
                samples[method, num_steps, variant_label(variant)] = x_1
    return {"rows": rows, "samples": samples, "target": target}


def variant_label(variant: dict | None) -> str:
    """"plain", or "FDS" with the settings the variant overrides."""
    if variant is None:
        return "plain"
    return " ".join(["FDS", *(f"{k}={v}" for k, v in variant.items())])


def markdown_table(rows: list[dict]) -> str:
    header = ("method", "steps", "sampler", "in support", "energy distance",
              "passes (fwd + jvp)", "wall (s)")
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for r in rows:
        if r["method"] == "data":
            lines.append(
                f"| data (independent draw) | | | {r['in_support']:.4f} | "
                f"{r['energy_distance']:.5f} | | |"
            )
            continue
        passes = r["forward_passes"] + r["jvp_passes"]
        lines.append(
            f"| {r['method']} | {r['steps']} | {r['fds']} | {r['in_support']:.4f} | "
            f"{r['energy_distance']:.5f} | {passes} ({r['forward_passes']} + {r['jvp_passes']}) "
            f"| {r['wall_s']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def plot(filename: str, config, result: dict, max_points: int = 5_000) -> None:
    """Rows: numbers of steps; columns: each method plainly and with each FDS variant."""
    labels = [variant_label(v) for v in (None, *config.variants)]
    columns = [(m, label) for m in config.methods for label in labels]
    rows = list(config.num_steps)
    fig, axes = plt.subplots(
        len(rows), len(columns), figsize=(2.6 * len(columns), 2.6 * len(rows)), squeeze=False,
        constrained_layout=True,
    )
    target = result["target"]
    for i, num_steps in enumerate(rows):
        for j, (method, label) in enumerate(columns):
            ax = axes[i, j]
            x = result["samples"][method, num_steps, label][:max_points]
            ax.scatter(x[:, 0], x[:, 1], s=0.3, alpha=0.4, rasterized=True)
            target.outline(ax)
            ax.set_title(f"{method}, {num_steps} steps\n{label}", fontsize=7)
            ax.set_xlim(-target.extent, target.extent)
            ax.set_ylim(-target.extent, target.extent)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
    fig.savefig(filename, dpi=110)
    plt.close(fig)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    config = _CONFIG.value
    result = run(config)
    os.makedirs(_OUT.value, exist_ok=True)
    stem = os.path.join(_OUT.value, config.name)
    with open(stem + ".json", "w") as f:
        json.dump({"config": config.to_dict(), "rows": result["rows"]}, f, indent=2, default=str)
        f.write("\n")
    table = markdown_table(result["rows"])
    with open(stem + ".md", "w") as f:
        f.write(table)
    plot(stem + "_samples.png", config, result)
    print(table)
    print(f"Wrote {stem}.json, {stem}.md, {stem}_samples.png on {jax.devices()[0].platform}.")


if __name__ == "__main__":
    app.run(main)
