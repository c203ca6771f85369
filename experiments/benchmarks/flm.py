"""Speed and memory of flow language models (FLM, FMLM) next to the masked diffusion model (MDM)
of the same size (flowjax only: the authors' code is PyTorch on CUDA with flash attention, which
this CPU machine cannot run).

On the machinery of `harness.py` (timing, the matmul yardstick, MFU, machine and load, results
JSON). float32 on JAX's default device, one invocation.

The networks: `flowjax.models.FlowLanguageTransformer` (FLM; with the end-time embedding for the
FMLM students) and `flowjax.models.TextTransformer` (MDM, V + 1 tokens with the mask, no time
conditioning), both "tiny" (width d = 128, depth N = 4, 4 heads, conditioning 128, MLP m = 4d),
V = 1,000, L = 128, B = 16, every weight drawn (nothing left at its zero initialisation).

Part `train`: one jitted update (`jax.value_and_grad` of the loss, `optax.adamw`, parameters and
optimiser state donated), timed round-robin (2 untimed rounds, then `--train-reps`, median):
  flm   the FLM loss: alpha ~ U[0, 1) per example, eps (B, L, V) from per-example seeds,
        x_g = (1 - g) eps + g e_x, the cross-entropy of the x-prediction (`losses.flm_loss`);
  mdm   the masked-diffusion ELBO (`losses.discrete_loss`, generalized KL, t ~ U(0, 0.999)).
Tokens/s = B L / time.

Part `sample`: one jitted sampling call of the batch, timed round-robin (1 untimed round, then
`--sample-reps`, median): FLM's Euler sampler (`solvers.flm_sample`) and MDM's ancestral sampler
(`solvers.masked_diffusion_sample`, every step calling the network) at 8, 64 and 1,024 steps;
FMLM stage two (one call per step) and stage one (teacher and student: two calls per step) in 1
step (`solvers.flow_map_sample`). The headline: FMLM's one step against FLM's 8, 64, 1,024.

Part `memory`: XLA's memory analysis of the compiled FLM and MDM updates at OWT's shape, V =
50,257 and L = 1,024, for one sequence (B = 1, the tiny backbone: the (L, V) arrays dominate),
next to the size of the state itself, L V 4 bytes = 206 MB per sequence in float32. The state
is made from per-example seeds inside the step, so on a mesh it lives split with its batch.

FLOPs (matmuls only): one call F = 2 P B L + 4 N B L^2 d, P = N (4 d^2 + 2 d m) + d V_out
[+ d V for FLM's input, the (B, L, V) x (V, d) product]; an update 3 F; a sampler NFE F.

    .venv/bin/python experiments/benchmarks/flm.py            # on a quiet machine
    .venv/bin/python experiments/benchmarks/flm.py --quick    # smoke check

Results: experiments/benchmarks/results/flm_<tag>.json (`--tag`, `--out`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
import harness  # timing, yardstick, machine, results

PARTS = ("train", "sample", "memory")
QUIET_LOAD = 1.0


@dataclasses.dataclass(frozen=True)
class Workload:
    width: int = 128
    depth: int = 4
    heads: int = 4
    cond: int = 128
    vocab: int = 1_000
    length: int = 128
    batch: int = 16
    steps: tuple[int, ...] = (8, 64, 1024)
    memory_vocab: int = 50_257
    memory_length: int = 1_024


FULL = Workload()
QUICK = Workload(width=32, depth=1, heads=2, cond=32, vocab=64, length=16, batch=4,
                 steps=(2, 8), memory_vocab=512, memory_length=64)


def forward_flops(w: Workload, flm: bool, batch: int | None = None) -> int:
    b, m = batch or w.batch, 4 * w.width
    params = w.depth * (4 * w.width**2 + 2 * w.width * m)
    params += w.width * (w.vocab if flm else w.vocab + 1) + (w.width * w.vocab if flm else 0)
    return 2 * params * b * w.length + 4 * w.depth * b * w.length**2 * w.width


def build(w: Workload, kind: str, vocab: int | None = None, length: int | None = None):
    """A network of the workload with every weight drawn (NumPy, seed 0)."""
    from flax import nnx

    from flowjax import models

    v, n = vocab or w.vocab, length or w.length
    sizes = dict(hidden_dim=w.width, depth=w.depth, num_heads=w.heads, cond_dim=w.cond)
    if kind == "mdm":
        model = models.TextTransformer((n,), vocab_size=v + 1, time_conditioning=False,
                                       rngs=nnx.Rngs(0), **sizes)
    else:
        model = models.FlowLanguageTransformer((n,), vocab_size=v, map_time=kind == "map",
                                               rngs=nnx.Rngs(0), **sizes)
    rng = np.random.default_rng(0)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    pure = nnx.to_pure_dict(params)
    import jax

    drawn = jax.tree.map(
        lambda a: (rng.standard_normal(a.shape) / np.sqrt(max(a.shape[0], 1)) * 0.5).astype(np.float32)
        if a.ndim > 1 else (1.0 + 0.1 * rng.standard_normal(a.shape)).astype(np.float32), pure
    )
    nnx.replace_by_pure_dict(params, drawn)
    return nnx.merge(graphdef, params, rest)


def make_updates(w: Workload, vocab: int | None = None, length: int | None = None) -> dict:
    """{name: (jitted update, initial (graphdef-free) carry, batch)}."""
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx

    from flowjax import losses, paths
    from flowjax.train.objectives.flm import per_example_normal

    v, n = vocab or w.vocab, length or w.length
    time = paths.ArgmaxTime(v)
    path = paths.OneHotGaussianPath(v, time)
    mask_path = paths.MixtureDiscreteProbPath(
        paths.MaskedDiffusionScheduler("linear", 1e-3, 0.0), paths.MaskSource(v + 1)
    )
    optimizer = optax.adamw(1e-4)
    out = {}
    for kind in ("flm", "mdm"):
        model = build(w, kind, v, n)
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)

        def loss(params, key, x_1, graphdef=graphdef, rest=rest, kind=kind):
            net = nnx.merge(graphdef, params, rest)
            time_key, seed_key = jax.random.split(key)
            b = x_1.shape[0]
            if kind == "flm":
                alpha = jax.random.uniform(time_key, (b,))
                seeds = jax.random.bits(seed_key, (b,), jnp.uint32)
                eps = per_example_normal(seeds, (n, v))
                x_g = path.sample(x_1, time.alpha_to_g(alpha), eps)
                return losses.flm_loss(lambda x, a: net(x, a), x_1, x_g, alpha)
            t = jax.random.uniform(time_key, (b,), maxval=0.999)
            x_0 = mask_path.source.sample(seed_key, x_1.shape)
            x_t = mask_path.sample(seed_key, x_0, x_1, t).x_t
            return losses.discrete_loss(
                lambda x, t: mask_path.posterior_logits(net(x, t), x, t),
                mask_path, x_1, x_t, t, loss="generalized_kl",
            )

        def update(params, opt_state, key, x_1, loss=loss):
            value, grads = jax.value_and_grad(loss)(params, key, x_1)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, value

        out[kind] = (jax.jit(update, donate_argnums=(0, 1)), params, optimizer.init(params))
    return out


def run_train(w: Workload, reps: int, peak: float) -> dict[str, Any]:
    import jax

    updates = make_updates(w)
    x_1 = jax.numpy.asarray(np.random.default_rng(1).integers(0, w.vocab, (w.batch, w.length)))
    state = {k: [p, o] for k, (_, p, o) in updates.items()}
    times = {k: [] for k in updates}
    for rep in range(reps + 2):
        for kind, (fn, _, _) in updates.items():
            key = jax.random.key(rep)
            start = harness.time.perf_counter()
            p, o, value = fn(*state[kind], key, x_1)
            jax.block_until_ready(value)
            elapsed = harness.time.perf_counter() - start
            state[kind] = [p, o]
            if rep >= 2:
                times[kind].append(elapsed)
    result = {}
    for kind, t in times.items():
        r = harness.median_and_times(t)
        r["tokens_per_s"] = w.batch * w.length / r["median_s"]
        r["gflops"] = harness.gflops(3 * forward_flops(w, kind == "flm"), r["median_s"])
        r["mfu"] = harness.mfu(r["gflops"], peak)
        result[kind] = r
    result["flm_over_mdm_time"] = result["flm"]["median_s"] / result["mdm"]["median_s"]
    result["load_average_after"] = harness.load_average()
    return result


def samplers(w: Workload) -> dict:
    """{name: (jitted sampler of a key, NFE, is_flm)}."""
    import jax
    import jax.numpy as jnp

    from flowjax import paths, solvers
    from flowjax.train.objectives.flm import per_example_normal

    time = paths.ArgmaxTime(w.vocab)
    flm, mdm, student = build(w, "flm"), build(w, "mdm"), build(w, "map")
    mask_path = paths.MixtureDiscreteProbPath(
        paths.MaskedDiffusionScheduler("linear", 1e-3, 0.0), paths.MaskSource(w.vocab + 1)
    )
    probs = lambda net: lambda x, *a: jax.nn.softmax(net(x, *a), -1)  # noqa: E731

    def noise(key):
        return per_example_normal(jax.random.bits(key, (w.batch,), jnp.uint32), (w.length, w.vocab))

    out = {}
    for steps in w.steps:
        out[f"flm_{steps}"] = (
            jax.jit(lambda k, s=steps: solvers.flm_sample(probs(flm), noise(k), time, s)), steps, True
        )
        out[f"mdm_{steps}"] = (
            jax.jit(lambda k, s=steps: solvers.masked_diffusion_sample(
                k, lambda x, t: mask_path.posterior_logits(mdm(x, t), x, t),
                jnp.full((w.batch, w.length), w.vocab), mask_path, step_size=1.0 / s,
                reuse_unchanged=False,
            )), steps, False,
        )
    one_call = lambda x, a_s, a_t, g_s, g_t: solvers.euler_map(  # noqa: E731
        x, probs(student)(x, a_s, a_t), g_s, g_t
    )
    two_call = lambda x, a_s, a_t, g_s, g_t: solvers.taylor_map(  # noqa: E731
        x, probs(flm)(x, a_s), student(x, a_s, a_t), g_s, g_t
    )
    out["fmlm_1"] = (jax.jit(lambda k: solvers.flow_map_sample(one_call, noise(k), time, 1)), 1, True)
    out["fmlm_stage_one_1"] = (
        jax.jit(lambda k: solvers.flow_map_sample(two_call, noise(k), time, 1)), 2, True
    )
    return out


def run_sample(w: Workload, reps: int, peak: float) -> dict[str, Any]:
    import jax

    calls = samplers(w)
    times = {k: [] for k in calls}
    for rep in range(reps + 1):
        for name, (fn, _, _) in calls.items():
            start = harness.time.perf_counter()
            jax.block_until_ready(fn(jax.random.key(rep)))
            if rep >= 1:
                times[name].append(harness.time.perf_counter() - start)
    result = {}
    for name, (_, nfe, is_flm) in calls.items():
        r = harness.median_and_times(times[name])
        r.update(nfe=nfe, tokens_per_s=w.batch * w.length / r["median_s"])
        r["gflops"] = harness.gflops(nfe * forward_flops(w, is_flm), r["median_s"])
        r["mfu"] = harness.mfu(r["gflops"], peak)
        result[name] = r
    result["fmlm_1_speedup_over_flm"] = {
        s: result[f"flm_{s}"]["median_s"] / result["fmlm_1"]["median_s"] for s in w.steps
    }
    result["flm_over_mdm_time"] = {
        s: result[f"flm_{s}"]["median_s"] / result[f"mdm_{s}"]["median_s"] for s in w.steps
    }
    result["load_average_after"] = harness.load_average()
    return result


def run_memory(w: Workload) -> dict[str, Any]:
    import jax

    v, n = w.memory_vocab, w.memory_length
    updates = make_updates(w, v, n)
    x_1 = jax.ShapeDtypeStruct((1, n), np.int32)
    result = {"state_bytes_per_sequence": 4 * n * v, "vocab": v, "length": n}
    for kind, (fn, params, opt_state) in updates.items():
        compiled = fn.lower(params, opt_state, jax.random.key(0), x_1).compile()
        analysis = compiled.memory_analysis()
        result[kind] = {
            "temp_bytes": int(analysis.temp_size_in_bytes),
            "argument_bytes": int(analysis.argument_size_in_bytes),
        }
    return result


def format_table(w: Workload, report: dict[str, Any]) -> str:
    lines = [f"FLM vs MDM, width {w.width}, depth {w.depth}, V {w.vocab}, L {w.length}, B {w.batch}"]
    if "train" in report:
        t = report["train"]
        lines.append("update        ms     tokens/s   GFLOP/s   MFU")
        for kind in ("flm", "mdm"):
            r = t[kind]
            lines.append(f"{kind:10s} {1e3 * r['median_s']:8.1f} {r['tokens_per_s']:10.0f} "
                         f"{r['gflops']:8.2f} {r['mfu']:6.1%}")
        lines.append(f"FLM / MDM update time: {t['flm_over_mdm_time']:.2f}x")
    if "sample" in report:
        s = report["sample"]
        lines.append("sampler            NFE        ms     tokens/s   GFLOP/s   MFU")
        for name, r in s.items():
            if isinstance(r, dict) and "median_s" in r:
                lines.append(f"{name:16s} {r['nfe']:5d} {1e3 * r['median_s']:10.1f} "
                             f"{r['tokens_per_s']:10.0f} {r['gflops']:8.2f} {r['mfu']:6.1%}")
        lines.append("FMLM 1 step speed-up over FLM at " + ", ".join(
            f"{k} steps {v:.0f}x" for k, v in s["fmlm_1_speedup_over_flm"].items()))
        lines.append("FLM / MDM sampling time at " + ", ".join(
            f"{k} steps {v:.2f}x" for k, v in s["flm_over_mdm_time"].items()))
    if "memory" in report:
        m = report["memory"]
        lines.append(
            f"memory per sequence at V {m['vocab']}, L {m['length']}: the state {m['state_bytes_per_sequence'] / 1e6:.0f} MB; "
            f"compiled update temporaries FLM {m['flm']['temp_bytes'] / 1e6:.0f} MB, "
            f"MDM {m['mdm']['temp_bytes'] / 1e6:.0f} MB"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--train-reps", type=int, default=None)
    parser.add_argument("--sample-reps", type=int, default=None)
    harness.add_matmul_arguments(parser)
    harness.add_results_arguments(parser)
    args = parser.parse_args(argv)
    harness.fill_defaults(args, {"train_reps": (10, 1), "sample_reps": (3, 1), **harness.MATMUL_DEFAULTS})
    parts = [p for p in args.parts.split(",") if p]
    if not parts or set(parts) - set(PARTS):
        parser.error(f"--parts: choose among {list(PARTS)}")
    machine = harness.describe_machine()
    import jax

    w = QUICK if args.quick else FULL
    report: dict[str, Any] = {
        **harness.report_header("FLM / FMLM vs the masked diffusion model (flowjax only)"),
        "settings": {"quick": args.quick, "parts": parts, "workload": dataclasses.asdict(w),
                     "train_reps": args.train_reps, "sample_reps": args.sample_reps},
        "machine": machine,
        "environment": harness.flowjax_environment(),
    }
    with harness.benchmark_running_flag():
        report["matmul"] = harness.jax_matmul(args.matmul_size, args.matmul_reps)
        peak = report["matmul"]["gflops"]
        if "train" in parts:
            report["train"] = run_train(w, args.train_reps, peak)
        if "sample" in parts:
            report["sample"] = run_sample(w, args.sample_reps, peak)
        if "memory" in parts:
            report["memory"] = run_memory(w)
    machine["load_average_at_end"] = harness.load_averages()
    start = machine["load_average_at_start"]
    report["under_load"] = bool(start and start[0] >= QUIET_LOAD)
    table = format_table(w, report)
    table += (f"\nmatmul yardstick {peak:.1f} GFLOP/s (float32, {jax.default_backend()}); load "
              f"average at start {start}, at end {machine['load_average_at_end']}")
    if report["under_load"]:
        table += f"\nTAKEN UNDER LOAD: 1-minute load average {start[0]:.2f} at start"
    if args.quick:
        table += "\n--quick: a smoke check, not a measurement"
    tag = args.tag or harness.machine_tag(machine)
    if jax.default_backend() != "cpu":
        tag += f"_{jax.default_backend()}"
    path = args.out or harness.results_file("flm", tag + ("_quick" if args.quick else ""))
    harness.write_results(path, report, table)


if __name__ == "__main__":
    main()
