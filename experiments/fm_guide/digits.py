"""The Flow Matching Guide's image recipe on 8x8 digits, on a CPU: train, then score checkpoints.

Trains `configs/fm_guide/digits.py` (or a variant) with the library's trainer, keeping a
checkpoint every `--every` updates, then for each checkpoint samples `--num-samples` digits from
the EMA parameters with the config's sampler (Heun, 25 steps on the EDM grid, classifier-free
guidance w = 0.2, uniformly random classes) and reports the Frechet distance to the real
training digits in the features of a small digits classifier
(`flowjax.metrics.digits_classifier`; an offline stand-in for FID, NOT comparable to FID).
For scale it also reports the same distance for the 360 real test digits, and scores the first
360 samples of each checkpoint too (the estimate grows as n falls). Writes, under
`--out`: results.json (the curve), fd_curve.png and samples.png (10 samples of each class from
the last checkpoint, one class per row).

    nice -n 10 python experiments/fm_guide/digits.py --workdir=/tmp/digits_run
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from flowjax import data
from flowjax.metrics.digits_classifier import digits_frechet_distance
from flowjax.train import load_config_file, train
from flowjax.train.checkpoint import abstract_with_shardings
from flowjax.train.setup import setup_run

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def restore(run, workdir: str, step: int):
    """The train state of checkpoint `step` in `workdir`."""
    abstract = abstract_with_shardings(run.abstract_state, run.shardings)
    with ocp.CheckpointManager(os.path.join(workdir, "checkpoints")) as manager:
        restored = manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
        )
    return restored.state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--variant", default=None, help="digits config variant (e.g. dit)")
    parser.add_argument("--steps", type=int, default=None, help="train.num_steps override")
    parser.add_argument("--every", type=int, default=250, help="checkpoint every N updates")
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--out", default=os.path.join(HERE, "digits"))
    parser.add_argument("--eval-only", action="store_true",
                        help="score the checkpoints already in --workdir (e.g. of a stopped run)")
    args = parser.parse_args()

    config = load_config_file(os.path.join(REPO, "configs", "fm_guide", "digits.py"), args.variant)
    if args.steps:
        config.train.num_steps = args.steps
    config.checkpoint.every_steps = args.every
    config.checkpoint.max_to_keep = config.train.num_steps // args.every + 2
    config.evaluate.after_training = False

    start = time.time()
    if not args.eval_only:
        train(config, args.workdir)
    train_seconds = time.time() - start

    run = setup_run(config)
    sampler = run.objective.sampler()

    @jax.jit
    def draw(ema_params, model_state, batch):
        return sampler(nnx.merge(run.graphdef, ema_params, model_state), batch, None)

    reference = data.load_digits("train")[0]
    real_test_digits = data.load_digits("test")[0]
    num_test = min(len(real_test_digits), args.num_samples)
    inputs = run.objective.source_batch(args.num_samples, config.sample.seed)
    rows = np.repeat(np.arange(10, dtype=np.int32), 10)
    grid_inputs = {"x": run.objective.source_batch(100, config.sample.seed + 1)["x"],
                   "label": rows}
    with ocp.CheckpointManager(os.path.join(args.workdir, "checkpoints")) as manager:
        steps = sorted(manager.all_steps())
    curve = []
    for step in steps:
        state = restore(run, args.workdir, step)
        samples = np.concatenate(
            [
                np.asarray(draw(state.ema_params, state.model_state,
                                {k: v[i : i + 500] for k, v in inputs.items()}))
                for i in range(0, args.num_samples, 500)
            ]
        )
        samples = np.clip(samples, -1, 1)
        distance = digits_frechet_distance(samples, reference)
        # The estimate is biased upwards at small n: also score as many samples as there are
        # real test digits, the scale of comparison.
        distance_n_test = digits_frechet_distance(samples[:num_test], reference)
        curve.append({"step": step, "frechet_distance": distance,
                      f"frechet_distance_{num_test}_samples": distance_n_test})
        print(f"step {step}: classifier-feature Frechet distance {distance:.3f} "
              f"({distance_n_test:.3f} with {num_test} samples)", flush=True)
    grid = np.asarray(draw(state.ema_params, state.model_state, grid_inputs))
    real_test = digits_frechet_distance(real_test_digits[:num_test], reference)

    os.makedirs(args.out, exist_ok=True)
    data.save_image_grid(os.path.join(args.out, "samples.png"), np.clip(grid, -1, 1), columns=10,
                         scale=6)
    results = {
        "config": f"configs/fm_guide/digits.py{':' + args.variant if args.variant else ''}",
        "num_steps": config.train.num_steps,
        "global_batch_size": config.train.global_batch_size,
        "num_samples": args.num_samples,
        "sampler": run.objective.sample_settings(),
        "reference": "the 1437 real training digits",
        "real_test_digits_frechet_distance": real_test,
        "trained_to_step": steps[-1],
        "train_seconds": None if args.eval_only else round(train_seconds, 1),
        "curve": curve,
    }
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    plot_curve(os.path.join(args.out, "fd_curve.png"), curve, real_test, num_test)
    print(json.dumps(results, indent=2))


def plot_curve(path: str, curve: list[dict], real_test: float, num_test: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    steps = [c["step"] for c in curve]
    ax.plot(steps, [c["frechet_distance"] for c in curve], "o-", label="all samples (EMA)")
    ax.plot(steps, [c[f"frechet_distance_{num_test}_samples"] for c in curve], "s-",
            label=f"first {num_test} samples")
    ax.axhline(real_test, color="gray", ls="--", label=f"the {num_test} real test digits")
    ax.set_xlabel("training step")
    ax.set_ylabel("classifier-feature Frechet distance")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
