"""Generator Matching (Holderrieth et al., 2024): sample quality of flow, jump, superposed and
mixed samplers, with exact posteriors and with trained models.

Part 1 (exact): the CondOT path towards `flowjax.data`'s 1-D Gaussian mixture, with the exact
marginal generators: the velocity of `flowjax.paths.analytic` and the jump generator of
`flowjax.paths.MixtureJumpGenerator` (posterior expectation of the conditional jump model).
For each sampler, n samples are compared with the mixture's CDF by a Kolmogorov-Smirnov test.

Part 2 (trained): the configs of configs/generator_matching/ are trained with the shared
trainer (one network with a velocity head and a binned jump head), then sampled with every
sampler; the table gives the energy distance to held-out data (and, for 1-D data, the KS test
against the exact CDF), next to the energy distance between two independent data samples of
the same size (the floor of this biased V-statistic).

Usage (the README's numbers come from the two parts run separately):
    nice -n 10 .venv/bin/python experiments/generator_matching/run.py --parts exact \
        --out experiments/generator_matching/results_exact.json
    nice -n 10 .venv/bin/python experiments/generator_matching/run.py --parts trained \
        --out experiments/generator_matching/results_trained.json
    nice -n 10 .venv/bin/python experiments/generator_matching/run.py --parts steps \
        --out experiments/generator_matching/results_steps.json
(--quick: n = 2,000 and 200 training steps, for a check that everything runs.)
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats as st

from flowjax import data, main, metrics, paths, solvers
from flowjax.data import toy
from flowjax.train import inference, load_config_file, objectives

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
W = np.asarray(toy.MIXTURE_1D_WEIGHTS)
M = np.asarray(toy.MIXTURE_1D_MEANS)
S = np.asarray(toy.MIXTURE_1D_STDS)

# sampler name -> (generator, flow_method, survival)
SAMPLERS = {
    "flow": ("flow", "euler", "exact"),
    "jump": ("jump", "euler", "exact"),
    "jump (linear survival)": ("jump", "euler", "linear"),
    "superposition 50/50": ("superposition", "euler", "exact"),
    "mixed (midpoint flow + Euler jump)": ("superposition", "midpoint", "exact"),
}
ENERGY_POINTS = 2_000
TRAINED_SAMPLES = 5_000  # per sampler (100 network evaluations each on a 2-core CPU)
TRAINED_STEP_SIZE = 0.01  # 100 steps in tau = 1 - sqrt(1 - t)


def mixture_cdf(y: np.ndarray) -> np.ndarray:
    return (W * st.norm.cdf((np.asarray(y)[:, None] - M) / S)).sum(1)


def exact_generators() -> dict[str, solvers.GeneratorFn]:
    """The exact flow, jump and 50/50 superposed generators of the 1-D mixture."""
    mixture = paths.GaussianMixture.isotropic(jnp.asarray(W), jnp.asarray(M[:, None]), jnp.asarray(S))
    marginal_jump = paths.MixtureJumpGenerator(mixture)
    path = paths.CondOTProbPath()

    def flow(x, t):
        return solvers.Generator(velocity=paths.analytic.marginal_velocity(path, mixture, x, t))

    def jump(x, t):
        return solvers.Generator(
            jump_rate=marginal_jump.scaled_rate(x, t) / (1 - t),
            jump_target=lambda key: marginal_jump.sample_target(key, x, t),
        )

    return {"flow": flow, "jump": jump, "superposition": solvers.superpose([flow, jump], [0.5, 0.5])}


def step_study(num: int, step_counts: tuple[int, ...], seeds: int) -> list[dict]:
    """KS statistic of the exact jump-only sampler against the data, by number of steps."""
    jump = exact_generators()["jump"]
    rows = []
    for steps in step_counts:
        run = jax.jit(
            lambda key, x, n=steps: solvers.generator_sample(
                key, jump, x, step_size=1 / n, time_power=2.0
            )
        )
        for seed in range(seeds):
            x0 = jax.random.normal(jax.random.key(50 + seed), (num, 1))
            samples = np.asarray(run(jax.random.key(seed), x0))[:, 0]
            ks = st.kstest(samples, mixture_cdf)
            rows.append(
                dict(sampler="jump", steps=steps, seed=seed, n=num,
                     ks_statistic=float(ks.statistic), ks_pvalue=float(ks.pvalue))
            )
            print(rows[-1], flush=True)
    return rows


def exact_part(num: int, steps: int, seeds: int) -> list[dict]:
    generators = exact_generators()
    rows = []
    for name, (generator, flow_method, survival) in SAMPLERS.items():
        run = jax.jit(
            lambda key, x, g=generators[generator], fm=flow_method, sv=survival: (
                solvers.generator_sample(
                    key, g, x, step_size=1 / steps, time_power=2.0, flow_method=fm, survival=sv
                )
            )
        )
        for seed in range(seeds):
            start = time.time()
            x0 = jax.random.normal(jax.random.key(1000 + seed), (num, 1))
            samples = np.asarray(run(jax.random.key(seed), x0))[:, 0]
            seconds = time.time() - start
            ks = st.kstest(samples, mixture_cdf)
            rows.append(
                dict(
                    sampler=name, seed=seed, n=num, steps=steps, ks_statistic=float(ks.statistic),
                    ks_pvalue=float(ks.pvalue), seconds=round(seconds, 1),
                )
            )
            print(rows[-1], flush=True)
    return rows


def trained_part(config_path: str, arg: str | None, workdir: str, num_steps: int | None) -> dict:
    config = load_config_file(os.path.join(REPO, config_path), arg)
    if num_steps is not None:
        config.train.num_steps = num_steps
    config.evaluate.after_training = False
    config.sample.step_size = TRAINED_STEP_SIZE
    start = time.time()
    main.run(config, workdir, "train")
    train_seconds = time.time() - start
    flow = inference.load_trained_flow(config, workdir)
    name = config.data.name
    rng = np.random.default_rng(12345)
    held_out = data.sample_toy(name, ENERGY_POINTS, rng)
    floor = metrics.energy_distance(held_out, data.sample_toy(name, ENERGY_POINTS, rng))
    rows = []
    for sampler, (generator, flow_method, survival) in SAMPLERS.items():
        variant = config.copy_and_resolve_references()
        variant.sample.generator, variant.sample.flow_method = generator, flow_method
        variant.sample.survival = survival
        objective = objectives.build_objective(variant)
        inputs = objective.source_batch(TRAINED_SAMPLES, seed=7)
        start = time.time()
        samples = inference.map_batches(
            flow.compile(objective.sampler()), inputs, TRAINED_SAMPLES, flow.run.mesh,
            jax.random.key(7),
        )
        row = dict(
            sampler=sampler, n=len(samples), seconds=round(time.time() - start, 1),
            energy_distance=metrics.energy_distance(samples[:ENERGY_POINTS], held_out),
        )
        if name in metrics.BOUNDED_SUPPORT:
            row["fraction_in_support"] = metrics.fraction_in_support(name, samples)
        if samples.shape[1:] == (1,):
            row["ks_pvalue"] = float(st.kstest(samples[:, 0], mixture_cdf).pvalue)
            row["ks_statistic"] = float(st.kstest(samples[:, 0], mixture_cdf).statistic)
        rows.append(row)
        print(config_path, arg, row, flush=True)
    return dict(
        config=f"{config_path}:{arg}" if arg else config_path, data=name,
        train_steps=config.train.num_steps, train_seconds=round(train_seconds, 1),
        sample_step_size=config.sample.step_size, time_power=config.sample.time_power,
        energy_distance_floor=floor, samplers=rows,
    )


def main_cli():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small n and short training")
    parser.add_argument("--workdir", default="/tmp/generator_matching_runs")
    parser.add_argument("--out", default=os.path.join(HERE, "results.json"))
    parser.add_argument("--parts", default="exact,steps,trained", help="comma-separated")
    args = parser.parse_args()
    parts = args.parts.split(",")
    command = "nice -n 10 .venv/bin/python experiments/generator_matching/run.py"
    command += f" --parts {args.parts} --out {args.out}" + (" --quick" if args.quick else "")
    result = {"command": command}

    def save():  # after every part, so that a long run keeps what it has measured
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)

    if "exact" in parts:
        result["exact"] = exact_part(2_000 if args.quick else 20_000, 400, 1 if args.quick else 2)
        save()
    if "steps" in parts:
        result["jump_steps"] = step_study(50_000, (100, 1600), 2)
        save()
    if "trained" in parts:
        result["trained"] = []
        for path, name in [
            ("configs/generator_matching/mixture1d.py", "mixture1d"),
            ("configs/generator_matching/checkerboard.py", "checkerboard"),
        ]:
            workdir = os.path.join(args.workdir, name)
            result["trained"].append(trained_part(path, None, workdir, 200 if args.quick else None))
            save()
    print("wrote", args.out)


if __name__ == "__main__":
    main_cli()
