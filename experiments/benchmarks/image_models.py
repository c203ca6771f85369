"""Throughput of the Flow Matching Guide's image networks: training and sampling images/s.

Measures, for the CIFAR-10 UNet of `configs/fm_guide/cifar10.py` (paper size, 57M parameters)
and DiT-B/2 (Peebles & Xie, 2023) on 32x32x3 images:

- training: the trainer's own compiled update (`flowjax.train.step.compile_train_step`: the
  CFM loss with skewed times, backward pass, AdamW, EMA) on a batch of `--train-batch` images;
- sampling: the objective's sampler (Heun on the EDM time grid, `--sample-steps` steps, i.e.
  2 x steps network evaluations) on `--sample-batch` images.

FLOPs are XLA's count of the compiled programs (`compiled.cost_analysis()["flops"]`: the whole
update; for sampling one network evaluation times the number of evaluations); model FLOPs
utilisation (MFU) is achieved FLOP/s over the measured peak of a large matmul in the same dtype
(the yardstick of experiments/benchmarks/harness.py). `--bf16` computes the networks in
bfloat16 (parameters stay float32). While timing, /tmp/benchmark_running exists so that other
jobs on the machine can pause. Results: experiments/benchmarks/results/
image_models_<device>[_bf16].json. No peer comparison: the reference PyTorch code's image
example cannot be installed offline.

    python experiments/benchmarks/image_models.py            # CPU, small batches
    python experiments/benchmarks/image_models.py --bf16 --train-batch=128 --sample-batch=256
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import jax
import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # also when loaded by path (tests)
    sys.path.insert(0, str(HERE))
import harness  # noqa: E402  (timing, matmul yardstick, MFU, flag file, results)

MODELS = ("unet_cifar10", "dit_b2")


def model_config(name: str, bf16: bool, quick: bool):
    """The cifar10 config (UNet or DiT-B/2 variant), tiny with --quick."""
    from flowjax.train import load_config_file

    variant = {"unet_cifar10": None, "dit_b2": "dit_b2"}[name]
    config = load_config_file(harness.REPO_ROOT / "configs" / "fm_guide" / "cifar10.py", variant)
    if quick:
        from flowjax.train.recipes import shrink_to_smoke

        shrink_to_smoke(config)
    config.model.dtype = "bfloat16" if bf16 else "float32"
    return config


def build(config, train_batch: int, sample_steps: int):
    """(train_step, state, batch, sampler, run pieces) for 32x32x3 images, one device."""
    from flowjax import parallel
    from flowjax.train import optim, registry, state as state_lib, step
    from flowjax.train.objectives import DataSpec, build_objective

    spec = DataSpec(event_shape=(32, 32, 3), num_classes=None, vocab_size=None, toy=None)
    config.sample.edm_steps = sample_steps
    objective = build_objective(config, spec)
    model_fn = lambda rngs: registry.build_model(config.model, spec.event_shape, None, rngs)  # noqa: E731
    schedule = optim.learning_rate_schedule(config.optim, config.train.num_steps)
    optimizer = optim.make_optimizer(config.optim, schedule)
    graphdef, abstract = state_lib.abstract_train_state(model_fn, optimizer, 0)
    config.sharding.mesh_shape = (1, 1, 1)
    mesh = jax.make_mesh((1, 1, 1), parallel.MESH_AXES,
                         axis_types=(jax.sharding.AxisType.Auto,) * 3, devices=jax.devices()[:1])
    shardings = parallel.state_shardings(abstract, mesh, config.sharding)
    train_state = state_lib.init_train_state(model_fn, optimizer, 0, shardings)
    train_step = step.compile_train_step(
        shardings, graphdef=graphdef, objective=objective, optimizer=optimizer,
        schedule=schedule, config=config, mesh=mesh,
    )
    num_params = sum(x.size for x in jax.tree.leaves(abstract.params))
    return objective, graphdef, train_state, train_step, num_params


def measure(name: str, args) -> dict[str, Any]:
    from flax import nnx

    config = model_config(name, args.bf16, args.quick)
    objective, graphdef, state, train_step, num_params = build(
        config, args.train_batch, args.sample_steps
    )
    rng = np.random.default_rng(0)
    batch = {"x": rng.uniform(-1, 1, (args.train_batch, 32, 32, 3)).astype(np.float32)}
    compiled_train = train_step.lower(state, batch).compile()
    train_flops = harness.flops_of(compiled_train)

    holder = {"state": state}

    def one_update():
        holder["state"], metrics = compiled_train(holder["state"], batch)
        return metrics["loss"]

    train_times, _ = harness.time_calls(one_update, jax.block_until_ready, args.reps, 1)

    sampler = objective.sampler()
    sample_fn = jax.jit(
        lambda ema, rest, b: sampler(nnx.merge(graphdef, ema, rest), b, None)
    )
    sample_batch = {"x": rng.standard_normal((args.sample_batch, 32, 32, 3)).astype(np.float32)}
    ema, rest = holder["state"].ema_params, holder["state"].model_state
    compiled_sample = sample_fn.lower(ema, rest, sample_batch).compile()
    forward = jax.jit(lambda ema, rest, x: nnx.merge(graphdef, ema, rest)(x, 0.5))
    forward_flops = harness.flops_of(forward.lower(ema, rest, sample_batch["x"]).compile())
    sample_times, _ = harness.time_calls(
        lambda: compiled_sample(ema, rest, sample_batch), jax.block_until_ready, args.reps, 1
    )
    train = harness.median_and_times(train_times)
    sample = harness.median_and_times(sample_times)
    nfe = 2 * args.sample_steps
    # One network evaluation's count times the evaluations (XLA's count of the scanned solver
    # would see its loop body once).
    sample_flops_total = forward_flops * nfe
    return {
        "model": name,
        "params": int(num_params),
        "compute_dtype": config.model.dtype,
        "train": {
            "batch": args.train_batch,
            "images_per_s": args.train_batch / train["median_s"],
            "flops_per_step": train_flops,
            "achieved_gflops": harness.gflops(train_flops, train["median_s"]),
            **train,
        },
        "sample": {
            "batch": args.sample_batch,
            "method": "heun on the EDM grid",
            "nfe": nfe,
            "images_per_s": args.sample_batch / sample["median_s"],
            "images_per_s_at_50_nfe": args.sample_batch / sample["median_s"] * nfe / 50,
            "flops_per_call": sample_flops_total,
            "achieved_gflops": harness.gflops(sample_flops_total, sample["median_s"]),
            **sample,
        },
    }


def main(argv=None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bf16", action="store_true", help="bfloat16 compute")
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--sample-batch", type=int, default=2)
    parser.add_argument("--sample-steps", type=int, default=5, help="Heun steps (2 NFE each)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--matmul-size", type=int, default=2048)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--quick", action="store_true", help="tiny networks (tests)")
    parser.add_argument("--out", default=None, help="results JSON (default: results/...)")
    args = parser.parse_args(argv)
    models = args.models.split(",")
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        raise ValueError(f"Unknown models {unknown}; expected some of {MODELS}.")

    device = jax.devices()[0]
    results: dict[str, Any] = {
        "command": "python experiments/benchmarks/image_models.py " + " ".join(argv or sys.argv[1:]),
        "device": device.device_kind,
        "platform": device.platform,
        "machine": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "quick": args.quick,
    }
    with harness.benchmark_running_flag():
        dtype = "bfloat16" if args.bf16 else "float32"
        peak = harness.jax_matmul(args.matmul_size, args.reps, dtype)
        results["matmul_peak"] = {"size": args.matmul_size, **peak}
        results["models"] = []
        for name in models:
            print(f"measuring {name} ...", flush=True)
            record = measure(name, args)
            for part in ("train", "sample"):
                record[part]["mfu"] = harness.mfu(record[part]["achieved_gflops"], peak["gflops"])
            results["models"].append(record)
            print(json.dumps({name: {p: {k: record[p][k] for k in ("images_per_s", "mfu")}
                                     for p in ("train", "sample")}}), flush=True)
    tag = f"{device.platform}{'_bf16' if args.bf16 else ''}"
    harness.write_results(args.out or harness.results_file("image_models", tag), results)
    return results


if __name__ == "__main__":
    main()
