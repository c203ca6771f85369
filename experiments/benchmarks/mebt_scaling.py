"""MeBT against full attention as the number of video tokens grows (Yoo et al., CVPR 2023,
"Towards End-to-End Generative Modeling of Long Videos with Memory-Efficient Bidirectional
Transformers", section 3.2: O(L N) attention through L latents against O(N^2)).

Workloads, at N = 1,024, 2,048, 4,096 and 8,192 tokens (grids (N / 256, 16, 16)), batch 1,
float32, CPU, both networks of width `--width` with `--heads` heads:

  mebt  `flowjax.models.MeBT` with `--latents` latents and the layer kinds once each in the
        paper's order (enc self enc dec lt2l dec), half the tokens visible;
  full  the bidirectional `flowjax.models.TextTransformer` (time_conditioning=False) over the
        flattened grid with as many blocks (6), the full-attention model of the comparison.

For each: XLA's FLOPs (`cost_analysis`) and temporary memory (`memory_analysis`) of the
compiled forward + backward (the gradient of the mean cross-entropy over the masked half),
and its median wall time over `--reps` runs after one untimed run (only where the temporary
memory is at most `--max-run-gib`: full attention at 4k and 8k tokens needs several GiB and
minutes per step on a shared 2-core machine, so it is compiled, not run). Then the training
examples/s of the "mebt" objective at the CPU smoke size of `configs/mebt/moving_digits.py`
(a (4, 8, 8) grid of 256 codes, width 32, the smoke layers; one update of the trainer's step
function = forward + backward + AdamW, batch 32).

Command (repository root): `nice -n 5 .venv/bin/python experiments/benchmarks/mebt_scaling.py`
(`--quick`: N up to 2,048, one rep). Results: `results/mebt_scaling_<machine tag>.json` with
the machine's description and load averages.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--latents", type=int, default=64)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--max-run-gib", type=float, default=2.0,
                        help="compile only (FLOPs, memory) where the step needs more than this")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    machine = harness.start_on_cpu()

    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx

    from flowjax.models import MeBT, TextTransformer, mebt_layers
    from flowjax.train.config import default_config
    from flowjax.train.objectives import DataSpec, build_objective
    from flowjax.train.recipes import shrink_mebt_to_smoke

    vocab = 1024
    sizes = (1024, 2048) if args.quick else (1024, 2048, 4096, 8192)
    reps = 1 if args.quick else args.reps

    def cross_entropy(logits, tokens, masked):
        nll = optax.softmax_cross_entropy_with_integer_labels(logits, tokens)
        return jnp.sum(jnp.where(masked, nll, 0.0)) / jnp.sum(masked)

    def measure(name, n, model, loss_fn, inputs):
        graphdef, state = nnx.split(model)
        grad = jax.jit(jax.value_and_grad(lambda s, *a: loss_fn(nnx.merge(graphdef, s), *a)))
        start = time.perf_counter()
        compiled = grad.lower(state, *inputs).compile()
        compile_s = time.perf_counter() - start
        memory = compiled.memory_analysis()
        result = {"tokens": n, "flops": harness.flops_of(compiled),
                  "temp_bytes": int(memory.temp_size_in_bytes),
                  "argument_bytes": int(memory.argument_size_in_bytes),
                  "compile_s": compile_s, "load_average": harness.load_average()}
        if result["temp_bytes"] <= args.max_run_gib * 2**30:
            times, _ = harness.time_calls(lambda: compiled(state, *inputs),
                                          jax.block_until_ready, reps, 1)
            result.update(harness.median_and_times(times))
        else:
            result["not_run"] = f"temporary memory over --max-run-gib={args.max_run_gib}"
        harness.log(f"{name} N={n}: {result['flops']:.3g} FLOPs, "
                    f"{result['temp_bytes'] / 2**20:.1f} MiB temp, "
                    f"{result.get('median_s', float('nan')):.3f} s")
        return result

    results = {"mebt": [], "full": []}
    for n in sizes:
        key = jax.random.key(n)
        grid = (n // 256, 16, 16)
        tokens = jax.random.randint(key, (1, n), 0, vocab)
        masked = jnp.arange(n)[None] % 2 == 1
        mebt = MeBT(grid, vocab_size=vocab, hidden_dim=args.width, num_heads=args.heads,
                    num_latents=args.latents, layers=mebt_layers(2, 2), rngs=nnx.Rngs(0))
        positions = mebt.grid_positions(grid[0])[None]
        results["mebt"].append(measure(
            "mebt", n, mebt,
            lambda m, t, p, v: cross_entropy(m.sequence_logits(t, p, v), t, ~v),
            (tokens, positions, ~masked)))
        full = TextTransformer((n,), vocab_size=vocab + 1, hidden_dim=args.width, depth=6,
                               num_heads=args.heads, cond_dim=args.width,
                               time_conditioning=False, rngs=nnx.Rngs(0))
        results["full"].append(measure(
            "full", n, full,
            lambda m, t, v: cross_entropy(m(jnp.where(v, t, vocab))[..., :vocab], t, ~v),
            (tokens, ~masked)))

    # Training examples/s of the objective at the smoke size, through the trainer's step.
    config = default_config("mebt")
    config.data = dict(source="video_tokens", path="", codebook_size=256)
    config.loss.curriculum_b = 0.0
    shrink_mebt_to_smoke(config)
    batch_size = 32
    objective = build_objective(config, DataSpec((4, 8, 8), None, 256, None))
    model = MeBT((4, 8, 8), vocab_size=256, rngs=nnx.Rngs(0), **{
        k: config.model[k] for k in ("hidden_dim", "num_heads", "num_latents", "layers")})
    graphdef, params = nnx.split(model)
    optimizer = optax.adamw(1e-3)

    @jax.jit
    def update(params, opt_state, x, key):
        batch = objective.draw_step_noise(key, {"x": x})
        loss, grads = jax.value_and_grad(
            lambda p: objective.loss(nnx.merge(graphdef, p), batch))(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    x = jax.random.randint(jax.random.key(0), (batch_size, 4, 8, 8), 0, 256)
    opt_state = optimizer.init(params)
    step_reps = 2 if args.quick else 10
    times, _ = harness.time_calls(lambda: update(params, opt_state, x, jax.random.key(1)),
                                  jax.block_until_ready, step_reps, 2)
    train = {"batch_size": batch_size, "grid": (4, 8, 8), "vocab": 256,
             "model": {k: config.model[k] for k in ("hidden_dim", "num_heads", "num_latents")},
             "layers": list(config.model.layers), **harness.median_and_times(times),
             "load_average": harness.load_average()}
    train["examples_per_s"] = batch_size / train["median_s"]
    harness.log(f"mebt objective at smoke size: {train['examples_per_s']:.1f} examples/s")

    out = {"machine": machine, "settings": vars(args), "vocab": vocab, "batch": 1,
           "networks": {"mebt": f"MeBT width {args.width}, {args.heads} heads, {args.latents} "
                                "latents, layers enc self enc dec lt2l dec",
                        "full": f"TextTransformer width {args.width}, depth 6, {args.heads} "
                                "heads, bidirectional"},
           "forward_backward": results, "mebt_objective_training": train,
           "load_average_at_end": harness.load_averages(),
           "taken": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    suffix = "_quick" if args.quick else ""
    path = harness.RESULTS_DIR / f"mebt_scaling_{harness.machine_tag(machine)}{suffix}.json"
    path.write_text(json.dumps(out, indent=1, default=str) + "\n")
    harness.log(f"wrote {path}")


if __name__ == "__main__":
    main()
