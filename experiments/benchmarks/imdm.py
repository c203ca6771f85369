"""Speed of the Infinite Mask Diffusion Model (IMDM) next to the masked diffusion model (MDM) it
extends: sampling throughput and distillation updates per second (flowjax only, no peer).

On the machinery of `harness.py` (timing, the matmul yardstick, MFU, the machine description
and load average, the results JSON); see its docstring for the conventions. Everything runs in
float32 on JAX's default device, in one invocation.

The two networks. MDM is a `flowjax.models.TextTransformer` without time conditioning (MDLM);
IMDM is a `flowjax.models.InfiniteMaskTransformer` holding the same backbone weights, with
uniform mask noise and D_eps = width: every masked position reads E[MASK] + MLP(eps), MLP =
Linear(D_eps -> 4d), GELU, Linear(4d -> d). Weights are drawn once with NumPy for every
parameter (kernels and biases uniform(+-1/sqrt(fan_in)), the embedding N(0, 1/d), norm scales
1 + N(0, 0.1^2); nothing is left at a zero initialisation, the last layer of the mask MLP
included, so that every weight takes part); MDM gets the same draws minus the mask MLP. Size
"tiny": width d = 128, depth N = 4, 4 heads, conditioning width 128, MLP width m = 4d; V =
1,000 data tokens + the mask; length L = 128; batch B = 16. The mask path is
`MixtureDiscreteProbPath(MaskedDiffusionScheduler("linear", 1e-3, 0.0), MaskSource(V + 1))`
and the network's logits become posterior logits as in the objectives ("masked_diffusion",
"imdm"): `path.posterior_logits(model(x, t, eps=eps), x, t)`.

Part 1, `sample`: `flowjax.solvers.masked_diffusion_sample` from all masks with 1, 8 and 128
steps (step size 1 / steps), MDM without eps, IMDM with `draw_noise=model.draw_noise` (eps
drawn at the start and carried, kept or redrawn by the three-branch transition), the same key
for both. Each with `reuse_unchanged=False` (every step calls the network: the fair per-step
cost) and `reuse_unchanged=True` (the network is skipped in steps that changed nothing; the
number of network evaluations, NFE, comes from `return_nfe`; IMDM's input also changes where an
eps is redrawn, and the same key reveals other positions in IMDM, whose sampler splits a key off
for eps). One timed call is one jitted sampling call of the whole batch (compiled ahead of time);
per number of steps the four samplers are timed round-robin (one untimed round, then
`--sample-reps` rounds, one call of each per round), so that a load that changes during the run
falls on all four alike; the median is reported; tokens/s = B L / time. The headline is the
time ratio IMDM / MDM at every number of steps: the ratio of the medians, and "paired", the
median over the rounds of the ratio of the two calls of the same round.

Part 2, `train`: one jitted update, `jax.value_and_grad` of the loss and an `optax.adamw`
update (lr 1e-4), the parameters and optimiser state donated; x_1 is one of 2 NumPy batches of
random tokens, used in turn; inside the update t ~ U(0, 0.999) per example and x_t ~ p_t(. |
x_1) from the path (`path.sample`):

  mdm_elbo    the masked-diffusion ELBO: `losses.discrete_loss(..., loss="generalized_kl")`;
  imdm_elbo   the same for IMDM, eps drawn per example from per-example seeds (as the "imdm"
              objective does, `per_example_noise`);
  mdm_sdtt    SDTT for MDM: a `models.TeacherStudent` (the teacher `model.teacher()`, frozen
              weights), `losses.sdtt_loss` with 2 teacher steps of dt = 1 / 16 (the student
              steps 1 / 8), one key per example;
  imdm_sdtt   SDTT for IMDM, the same eps (drawn per example) read by teacher and student.

One timed call is one update; the four are timed round-robin (`--train-warmup` untimed rounds,
then `--train-reps` rounds, median); updates/s = 1 / time, and the cost of every update relative
to mdm_elbo is its time ratio (of the medians, and paired per round as above).

FLOPs: the matrix multiplications only, kept simple. One network call on B sequences of L
tokens:

  F = 2 P B L + 4 N B L^2 d,    P = N (4 d^2 + 2 d m) + d (V + 1)   [+ 4 d D_eps + 4 d^2 for IMDM]

P the weights of the token-wise matmuls (qkv, output projection, MLP, head; IMDM's mask MLP,
which runs on every position), the second term the attention products; the embedding lookup,
the per-sequence conditioning and modulations, norms, softmax and the draws are left out. A
sampling call costs NFE F; an ELBO update 3 F (forward, and two products per forward product
backward); an SDTT update 5 F (two teacher calls without gradient, the student's forward and
backward). Achieved FLOP/s are reported in GFLOP/s and as a fraction of the matmul yardstick
measured in this run: the model FLOPs utilisation (MFU).

`--quick`: width 32, depth 1, 2 heads, conditioning 32, L = 16, B = 4, steps (1, 8), 1 timed
repetition, a small yardstick: a smoke check.

While it times, /tmp/benchmark_running exists (`harness.benchmark_running_flag`) so that other
jobs on the machine can pause. The load average at the start and at the end is recorded, and
the 1-minute figure after each group of measurements (`load_average_after`, per number of steps
and after the updates; the benchmark's own threads count in it); a run that starts with a 1-minute load average of 1.0 or more is labelled as
taken under load.

Run, from the repository root, on a quiet machine:

    .venv/bin/python experiments/benchmarks/imdm.py
    .venv/bin/python experiments/benchmarks/imdm.py --quick    # smoke check

Results: the table is printed and written as JSON to `experiments/benchmarks/results/
imdm_<tag>.json` (`--tag`, default the machine tag, with `_<platform>` when JAX does not run on
the CPU and `_quick` appended for `--quick`; `--out` overrides the path).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # also when loaded by path (tests)
    sys.path.insert(0, str(HERE))
import harness  # timing, yardstick, machine, results

PARTS = ("sample", "train")
MODELS = ("mdm", "imdm")
UPDATES = ("mdm_elbo", "imdm_elbo", "mdm_sdtt", "imdm_sdtt")
LEARNING_RATE = 1e-4
T_MAX = 0.999  # training times t ~ U(0, T_MAX)
SDTT_TEACHER_STEPS = 2
SDTT_DT = 1.0 / 16.0  # the teacher's step; the student's is SDTT_TEACHER_STEPS * SDTT_DT
NUM_BATCHES = 2  # training batches of x_1, used in turn
QUIET_LOAD = 1.0  # a 1-minute load average at start at or above it labels the run "under load"
SEED = 0


@dataclasses.dataclass(frozen=True)
class Workload:
    """The network's sizes (TextTransformer's hidden_dim, depth, num_heads, cond_dim), the data
    vocabulary (+ the mask), and the batch."""

    width: int = 128
    depth: int = 4
    heads: int = 4
    cond: int = 128
    mlp_ratio: float = 4.0
    vocab: int = 1_000
    length: int = 128
    batch: int = 16
    steps: tuple[int, ...] = (1, 8, 128)

    @property
    def mlp(self) -> int:
        return int(self.mlp_ratio * self.width)

    @property
    def noise_dim(self) -> int:  # D_eps = width
        return self.width


FULL = Workload()
QUICK = Workload(width=32, depth=1, heads=2, cond=32, length=16, batch=4, steps=(1, 8))


def matmul_params(w: Workload, imdm: bool) -> int:
    """P: the weights of the token-wise matmuls (module docstring)."""
    d = w.width
    p = w.depth * (4 * d * d + 2 * d * w.mlp) + d * (w.vocab + 1)
    if imdm:
        p += w.noise_dim * 4 * d + 4 * d * d
    return p


def forward_flops(w: Workload, imdm: bool) -> int:
    """F = 2 P B L + 4 N B L^2 d: one network call on the batch."""
    tokens = w.batch * w.length
    return 2 * matmul_params(w, imdm) * tokens + 4 * w.depth * tokens * w.length * w.width


def update_flops(w: Workload, update: str) -> int:
    """3 F for an ELBO update, 5 F for an SDTT update."""
    model, loss = update.split("_")
    return (3 if loss == "elbo" else 5) * forward_flops(w, model == "imdm")


# ----------------------------------------------------------------------------------------------
# The networks (jax is imported inside the functions, after the machine is described)
# ----------------------------------------------------------------------------------------------


def mask_path(w: Workload):
    from flowjax import paths

    return paths.MixtureDiscreteProbPath(
        paths.MaskedDiffusionScheduler("linear", 1e-3, 0.0), paths.MaskSource(w.vocab + 1)
    )


def draw_weights(rng: np.random.Generator, pure: dict) -> dict:
    """NumPy draws of every parameter of an nnx pure dict (module docstring), float32."""

    def draw(tree: dict, fan_in: int | None = None) -> dict:
        out = {}
        kernel = tree.get("kernel") if isinstance(tree, dict) else None
        fan = np.shape(kernel)[0] if kernel is not None else fan_in
        for name, value in tree.items():
            if isinstance(value, dict):
                out[name] = draw(value)
                continue
            shape = np.shape(value)
            if name == "embedding":
                v = rng.normal(0.0, 1.0 / math.sqrt(shape[1]), shape)
            elif name == "scale":
                v = 1.0 + 0.1 * rng.standard_normal(shape)
            elif name in ("kernel", "bias") and fan:
                bound = 1.0 / math.sqrt(fan)
                v = rng.uniform(-bound, bound, shape)
            else:
                v = 0.1 * rng.standard_normal(shape)
            out[name] = v.astype(np.float32)
        return out

    return draw(pure)


def build_models(w: Workload):
    """(MDM, IMDM): the IMDM's weights drawn with NumPy, MDM holding the same backbone."""
    import jax.numpy as jnp
    from flax import nnx

    from flowjax.models import InfiniteMaskTransformer, TextTransformer

    backbone = {
        "vocab_size": w.vocab + 1, "hidden_dim": w.width, "depth": w.depth,
        "num_heads": w.heads, "cond_dim": w.cond, "mlp_ratio": w.mlp_ratio,
    }
    imdm = InfiniteMaskTransformer(
        (w.length,), noise_dim=w.noise_dim, mask_noise="uniform", rngs=nnx.Rngs(SEED), **backbone
    )
    mdm = TextTransformer((w.length,), time_conditioning=False, rngs=nnx.Rngs(SEED), **backbone)
    pure = nnx.to_pure_dict(nnx.state(imdm, nnx.Param))
    weights = draw_weights(np.random.default_rng(SEED), pure)

    def to_jax(tree: dict) -> dict:
        return {k: to_jax(v) if isinstance(v, dict) else jnp.asarray(v) for k, v in tree.items()}

    for model, tree in ((imdm, weights), (mdm, {k: v for k, v in weights.items()
                                                 if k != "mask_embedding"})):
        state = nnx.state(model, nnx.Param)
        nnx.replace_by_pure_dict(state, to_jax(tree))
        nnx.update(model, state)
    return mdm, imdm


def posterior(path, model):
    """(x, t, **kwargs) -> the path's posterior logits of the network's (as the objectives)."""
    return lambda x, t, **kwargs: path.posterior_logits(model(x, t, **kwargs), x, t)


# ----------------------------------------------------------------------------------------------
# Part 1: sampling
# ----------------------------------------------------------------------------------------------


def interleaved_times(calls: dict[str, Any], sync, reps: int, warmup: int):
    """Times every call of `calls` (name -> fn) round-robin: `warmup` untimed rounds, then
    `reps` timed ones, one call of each per round, so that a load that changes during the run
    falls on all of them alike; returns ({name: times}, {name: last output})."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    outputs: dict[str, Any] = {}
    for _ in range(warmup):
        for name, fn in calls.items():
            outputs[name] = sync(fn())
    for _ in range(reps):
        for name, fn in calls.items():
            (seconds,), outputs[name] = harness.time_calls(fn, sync, 1, 0)
            times[name].append(seconds)
    return times, outputs


def compile_sampler(w: Workload, model, imdm: bool, steps: int, reuse: bool):
    """A call of the compiled sampler, (x, nfe), of the whole batch from all masks."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from flowjax import solvers

    path = mask_path(w)
    graphdef, params = nnx.split(model)
    x_init = jnp.full((w.batch, w.length), w.vocab, jnp.int32)
    key = jax.random.key(SEED)

    def sample(params, key, x_init):
        net = nnx.merge(graphdef, params)
        extra = {"draw_noise": net.draw_noise} if imdm else {}
        return solvers.masked_diffusion_sample(
            key, posterior(path, net), x_init, path, step_size=1.0 / steps,
            reuse_unchanged=reuse, return_nfe=True, **extra,
        )

    compiled = jax.jit(sample).lower(params, key, x_init).compile()
    return lambda: compiled(params, key, x_init)


def run_sample(w: Workload, models: dict, reps: int, peak: float) -> dict[str, Any]:
    """Per number of steps, the four samplers (MDM, IMDM; without and with skipping) timed
    round-robin, each run once untimed first."""
    import jax

    cases = []
    for steps in w.steps:
        harness.log(f"sample: {steps} steps, MDM and IMDM, reuse_unchanged False and True ...")
        calls = {
            (name, mode): compile_sampler(w, models[name], name == "imdm", steps, mode == "skip")
            for name in MODELS for mode in ("no_skip", "skip")
        }
        times, outputs = interleaved_times(calls, jax.block_until_ready, reps, 1)
        load = harness.load_average()
        case: dict[str, Any] = {"steps": steps, "load_average_after": load}
        for (name, mode), (x, nfe) in outputs.items():
            record = {**harness.median_and_times(times[name, mode]), "nfe": int(nfe)}
            record["tokens_per_s"] = w.batch * w.length / record["median_s"]
            record["flops"] = int(nfe) * forward_flops(w, name == "imdm")
            record["gflops"] = harness.gflops(record["flops"], record["median_s"])
            record["mfu"] = harness.mfu(record["gflops"], peak)
            record["fraction_masked"] = float(np.mean(np.asarray(x) == w.vocab))
            case.setdefault(name, {})[mode] = record
        case["imdm_over_mdm_time"] = {
            mode: case["imdm"][mode]["median_s"] / case["mdm"][mode]["median_s"]
            for mode in ("no_skip", "skip")
        }
        # The ratio of the calls of the same round, median over the rounds.
        case["imdm_over_mdm_time_paired"] = {
            mode: float(np.median(np.divide(times["imdm", mode], times["mdm", mode])))
            for mode in ("no_skip", "skip")
        }
        cases.append(case)
    return {
        "path": "MixtureDiscreteProbPath(MaskedDiffusionScheduler('linear', 1e-3, 0.0), "
                "MaskSource(V + 1))",
        "timing": "per number of steps the four samplers round-robin, 1 untimed round first",
        "flops_imdm_over_mdm": forward_flops(w, True) / forward_flops(w, False),
        "cases": cases,
    }


# ----------------------------------------------------------------------------------------------
# Part 2: distillation updates
# ----------------------------------------------------------------------------------------------


def make_update(w: Workload, update: str, models: dict):
    """(params, opt_state, rest, jitted step(params, opt_state, rest, key, x_1))."""
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx

    from flowjax import losses
    from flowjax import models as fj_models
    from flowjax.train.objectives.imdm import per_example_noise

    path = mask_path(w)
    kind, loss = update.split("_")
    imdm = kind == "imdm"
    net = models[kind]
    if loss == "sdtt":
        net = fj_models.TeacherStudent(lambda rngs: nnx.clone(models[kind]), nnx.Rngs(SEED))
    graphdef, params, rest = nnx.split(net, nnx.Param, ...)
    params = jax.tree.map(jnp.copy, params)  # donated by the step; the models' stay intact
    optimizer = optax.adamw(LEARNING_RATE)

    def loss_fn(params, rest, key, x_1):
        model = nnx.merge(graphdef, params, rest)
        t_key, x_key, noise_key, sdtt_key = jax.random.split(key, 4)
        t = jax.random.uniform(t_key, (w.batch,), maxval=T_MAX)
        x_0 = path.source.sample(x_key, x_1.shape)
        x_t = path.sample(x_key, x_0, x_1, t).x_t
        cond = {}
        if imdm:
            seeds = jax.random.bits(noise_key, (w.batch,), jnp.uint32)
            cond["eps"] = per_example_noise(model, seeds, (w.length,))
        if loss == "elbo":
            return losses.discrete_loss(
                posterior(path, model), path, x_1, x_t, t, loss="generalized_kl", **cond
            )
        return losses.sdtt_loss(
            jax.random.split(sdtt_key, w.batch), posterior(path, model.student),
            posterior(path, model.teacher()), path, x_t, t, SDTT_DT,
            teacher_steps=SDTT_TEACHER_STEPS, **cond,
        )

    def step(params, opt_state, rest, key, x_1):
        value, grads = jax.value_and_grad(loss_fn)(params, rest, key, x_1)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    return params, optimizer.init(params), rest, jax.jit(step, donate_argnums=(0, 1))


def update_call(w: Workload, update: str, models: dict):
    """(one update, its jitted step): each call updates the parameters it holds, with the next
    key and the next of the NUM_BATCHES batches."""
    import jax
    import jax.numpy as jnp

    params, opt_state, rest, step = make_update(w, update, models)
    rng = np.random.default_rng(SEED + 1)
    batches = [jnp.asarray(rng.integers(0, w.vocab, (w.batch, w.length), np.int32))
               for _ in range(NUM_BATCHES)]
    base = jax.random.key(SEED + 2)
    state = {"params": params, "opt": opt_state, "i": 0}

    def one_update():
        i = state["i"]
        state["params"], state["opt"], loss = step(
            state["params"], state["opt"], rest, jax.random.fold_in(base, i),
            batches[i % NUM_BATCHES],
        )
        state["i"] = i + 1
        return loss

    return one_update, step


def run_train(w: Workload, models: dict, reps: int, warmup: int, peak: float) -> dict[str, Any]:
    """The four updates timed round-robin, `warmup` untimed rounds first."""
    import jax

    harness.log(f"train: {', '.join(UPDATES)} ...")
    calls, steps = {}, {}
    for update in UPDATES:
        calls[update], steps[update] = update_call(w, update, models)
    times, losses_out = interleaved_times(calls, jax.block_until_ready, reps, warmup)
    load = harness.load_average()
    updates = {}
    for update in UPDATES:
        record = {**harness.median_and_times(times[update]),
                  "final_loss": float(losses_out[update]),
                  "compilations": steps[update]._cache_size()}
        record["updates_per_s"] = 1.0 / record["median_s"]
        record["tokens_per_s"] = w.batch * w.length / record["median_s"]
        record["flops"] = update_flops(w, update)
        record["gflops"] = harness.gflops(record["flops"], record["median_s"])
        record["mfu"] = harness.mfu(record["gflops"], peak)
        updates[update] = record
    base = updates["mdm_elbo"]["median_s"]
    for update, record in updates.items():
        record["time_over_mdm_elbo"] = record["median_s"] / base
        record["time_over_mdm_elbo_paired"] = float(
            np.median(np.divide(times[update], times["mdm_elbo"]))
        )
    return {
        "learning_rate": LEARNING_RATE, "optimizer": "optax.adamw", "t_max": T_MAX,
        "sdtt_teacher_steps": SDTT_TEACHER_STEPS, "sdtt_dt": SDTT_DT,
        "timing": "the four updates round-robin, after the untimed rounds",
        "load_average_after": load, "updates": updates,
    }


# ----------------------------------------------------------------------------------------------
# Tables, arguments, main
# ----------------------------------------------------------------------------------------------


def format_sample_table(w: Workload, part: dict[str, Any]) -> str:
    header = (
        f"{'model':<5} {'steps':>5} | {'NFE':>4} {'time s':>8} {'tok/s':>9} {'MFU':>6} | "
        f"{'NFE skip':>8} {'time s':>8} {'tok/s':>9} {'MFU':>6}"
    )
    title = (
        f"Sampling, B = {w.batch}, L = {w.length}, V = {w.vocab} + mask, width {w.width}, "
        f"depth {w.depth}"
    )
    lines = [title, header, "-" * len(header)]
    for case in part["cases"]:
        for name in MODELS:
            a, b = case[name]["no_skip"], case[name]["skip"]
            lines.append(
                f"{name.upper():<5} {case['steps']:>5} | {a['nfe']:>4} {a['median_s']:8.4f} "
                f"{a['tokens_per_s']:9.0f} {100 * a['mfu']:5.1f}% | {b['nfe']:>8} "
                f"{b['median_s']:8.4f} {b['tokens_per_s']:9.0f} {100 * b['mfu']:5.1f}%"
            )
    lines += [
        "",
        (
            "IMDM / MDM time, reuse_unchanged False | True (median of the times; paired: median "
            "of the ratios of the same round):"
        ),
    ]
    for c in part["cases"]:
        r, q = c["imdm_over_mdm_time"], c["imdm_over_mdm_time_paired"]
        lines.append(
            f"  {c['steps']:>4} steps: {r['no_skip']:.3f}x | {r['skip']:.3f}x   (paired "
            f"{q['no_skip']:.3f}x | {q['skip']:.3f}x); 1-minute load after: "
            f"{c['load_average_after']:.2f}"
        )
    lines.append(f"IMDM / MDM matmul FLOPs per network call: {part['flops_imdm_over_mdm']:.3f}")
    return "\n".join(lines)


def format_train_table(part: dict[str, Any]) -> str:
    header = (
        f"{'update':<10} | {'time ms':>8} {'updates/s':>9} {'GFLOP/s':>8} {'MFU':>6} | "
        f"{'time / mdm_elbo':>15} {'paired':>7}"
    )
    lines = ["Updates (value_and_grad + adamw), same batch", header, "-" * len(header)]
    for name, r in part["updates"].items():
        lines.append(
            f"{name:<10} | {1e3 * r['median_s']:8.2f} {r['updates_per_s']:9.2f} "
            f"{r['gflops']:8.2f} {100 * r['mfu']:5.1f}% | {r['time_over_mdm_elbo']:14.3f}x "
            f"{r['time_over_mdm_elbo_paired']:6.3f}x"
        )
    lines.append(f"1-minute load after: {part['load_average_after']:.2f}")
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--quick", action="store_true", help="tiny sizes and 1 rep: a smoke check")
    add("--parts", default=",".join(PARTS), help=f"comma-separated among {', '.join(PARTS)}")
    add("--sample-reps", type=int, default=None, help="timed sampling calls (default 3; quick 1)")
    add("--train-reps", type=int, default=None, help="timed updates (default 10; quick 1)")
    add("--train-warmup", type=int, default=None, help="untimed updates first (default 2)")
    harness.add_matmul_arguments(parser)
    harness.add_results_arguments(parser)
    args = parser.parse_args(argv)
    harness.fill_defaults(args, {
        "sample_reps": (3, 1), "train_reps": (10, 1), "train_warmup": (2, 2),
        **harness.MATMUL_DEFAULTS,
    })
    args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(args.parts) - set(PARTS))
    if unknown or not args.parts:
        parser.error(f"unknown or no parts {unknown}; choose among {list(PARTS)}")
    return args


def fmt_load(averages) -> str:
    return "n/a" if averages is None else " ".join(f"{a:.2f}" for a in averages)


def results_path(args: argparse.Namespace, machine: dict[str, Any], platform: str) -> Path:
    if args.out:
        return args.out
    tag = args.tag or harness.machine_tag(machine) + ("" if platform == "cpu" else f"_{platform}")
    return harness.results_file("imdm", tag + ("_quick" if args.quick else ""))


def main(argv=None) -> None:
    args = parse_args(argv)
    machine = harness.describe_machine()
    import jax

    w = QUICK if args.quick else FULL
    report: dict[str, Any] = {
        **harness.report_header(
            "IMDM vs the masked diffusion model (flowjax only): sampling tokens/s at 1, 8, 128 "
            "steps with and without skipping unchanged steps; ELBO and SDTT updates/s; float32"
        ),
        "settings": {
            "quick": args.quick,
            "parts": args.parts,
            "workload": dataclasses.asdict(w),
            "mask_noise": "uniform",
            "sample_reps": args.sample_reps,
            "train_reps": args.train_reps,
            "train_warmup": args.train_warmup,
            "matmul_size": args.matmul_size,
            "matmul_params": {m: matmul_params(w, m == "imdm") for m in MODELS},
            "forward_flops": {m: forward_flops(w, m == "imdm") for m in MODELS},
            "flop_counting": (
                "matmuls only; F = 2 P B L + 4 N B L^2 d, P = N(4d^2 + 2dm) + d(V+1) "
                "[+ 4d D_eps + 4d^2 IMDM]; sampling NFE*F, ELBO update 3F, SDTT update 5F"
            ),
        },
        "machine": machine,
        "environment": harness.flowjax_environment(),
    }
    platform = jax.default_backend()
    tables = []
    with harness.benchmark_running_flag():
        harness.log(f"matmul {args.matmul_size}^3 ...")
        report["matmul"] = harness.jax_matmul(args.matmul_size, args.matmul_reps)
        peak = report["matmul"]["gflops"]
        mdm, imdm = build_models(w)
        models = {"mdm": mdm, "imdm": imdm}
        if "sample" in args.parts:
            report["sample"] = run_sample(w, models, args.sample_reps, peak)
            tables.append(format_sample_table(w, report["sample"]))
        if "train" in args.parts:
            report["train"] = run_train(w, models, args.train_reps, args.train_warmup, peak)
            tables.append(format_train_table(report["train"]))
    machine["load_average_at_end"] = harness.load_averages()
    start = machine["load_average_at_start"]
    report["under_load"] = bool(start and start[0] >= QUIET_LOAD)
    table = "\n\n".join(tables)
    table += (
        f"\n\nmatmul yardstick {report['matmul']['gflops']:.1f} GFLOP/s ({args.matmul_size}^3, "
        f"float32, {platform}); load average (1, 5, 15 min) at start {fmt_load(start)}, at end "
        f"{fmt_load(machine['load_average_at_end'])} (the end includes this benchmark's own "
        "threads)"
    )
    loads = [c["load_average_after"] for c in report.get("sample", {}).get("cases", [])]
    if "train" in report:
        loads.append(report["train"]["load_average_after"])
    if loads and None not in loads:
        table += (
            f"\n1-minute load average after each measurement: {min(loads):.2f}-{max(loads):.2f}"
        )
    if report["under_load"]:
        table += f"\nTAKEN UNDER LOAD: 1-minute load average {start[0]:.2f} at start"
    if args.quick:
        table += "\n--quick: tiny sizes, tiny matmul yardstick: a smoke check, not a measurement"
    harness.write_results(results_path(args, machine, platform), report, table)


if __name__ == "__main__":
    main()
