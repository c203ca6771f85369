"""Speed of flowjax's discrete sampler next to the PyTorch reference's MixtureDiscreteEulerSolver.

A sibling of `vs_flow_matching.py`, on the same machinery (`harness.py`: timing, machine
description, the peer's virtual environment and the exchange with it, the matmul yardstick); see
their docstrings for the conventions. Both libraries run, one after the other on the same CPU in
float32, the same workload with the same network weights:

  discrete   sampling the posterior network of the Flow Matching Guide's 2D discrete checkerboard
             example (tokens in a vocabulary of 128 plus a mask token, 2 tokens per point) with
             the CTMC Euler sampler from the mask, mixture path kappa_t = t^2, N = 10,000 points,
             64 and 1,024 steps (NFE = steps). flowjax: `discrete_sample` under `jax.jit` (the
             whole run one `lax.scan`); peer: `MixtureDiscreteEulerSolver.sample` with the model
             wrapped to return probabilities, as in the reference's example.

The network (`DiscreteMLP` in flowjax, `nn.Embedding` + `nn.Linear` + `nn.SiLU` in torch): each
token embedded in 128 features, cat[embeddings, t] (257 inputs) -> 3 x (Linear of width 128 +
Swish) -> Linear to 2 x 129 logits, turned into the posterior as the trainer does
(`path.posterior="bayes"`: plus log p_t(x_t^i | x_1^i), i.e. unmasked tokens are final and the
mask is never drawn; the same few elementwise operations on both sides). Its weights are those of
a trained checkpoint of `configs/fm_guide/discrete_checkerboard.py:mask,demo` with
`--checkpoint=<workdir>` (e.g. `workdirs/kinetic_optimal/demo/guide_mask`, written by
`experiments/kinetic_optimal/compare_paths.py`), or else drawn with NumPy (embedding N(0, 1),
uniform(+-1/sqrt(fan_in)) linear layers: torch's default initialisations); either way the same
arrays are loaded into both libraries.

The outputs are random, so they are compared in distribution: the fraction of samples inside the
checkerboard's support (with trained weights: that of the model on both sides), the total
variation between the two libraries' histograms of the first token (129 bins, N samples each)
next to the same statistic between two flowjax runs with different keys (the sampling-noise
floor), and the fraction of tokens still masked at t = 1 (0 on both sides: the last step lands on
the posterior draw).

FLOPs: matmuls of the network only, F(N) = 2 N sum(in * out) per evaluation, NFE * F per run
(the embedding lookup, the softmax and the categorical draws are left out).

Timing: one untimed run first (compilation for JAX, allocator warm-up for torch), then `--reps`
timed runs (default 5), median reported.

Run, from the repository root, on a quiet machine:

    .venv/bin/python experiments/benchmarks/vs_flow_matching_discrete.py \
        --checkpoint=workdirs/kinetic_optimal/demo/guide_mask
    .venv/bin/python experiments/benchmarks/vs_flow_matching_discrete.py --quick   # smoke check

The table is printed and written as JSON to
`experiments/benchmarks/results/vs_flow_matching_discrete_<tag>.json`.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # also when loaded by path (tests)
    sys.path.insert(0, str(HERE))
import harness  # noqa: E402  (timing, yardstick, machine, peer environment, results)

DATA_VOCAB = 128
VOCAB = DATA_VOCAB + 1  # with the mask token
MASK = DATA_VOCAB
LENGTH = 2  # tokens per point
NUM_LAYERS = 3
KAPPA_POWER = 2.0
SEED = 0
WARMUP = 1


@dataclasses.dataclass(frozen=True)
class DiscreteWorkload:
    """Sampling N points with `steps` Euler steps (NFE = steps)."""

    n: int
    steps: int
    hidden: int = 128
    group: str = "discrete"

    @property
    def name(self) -> str:
        return f"discrete_n{self.n}_steps{self.steps}"

    @property
    def size(self) -> str:
        return f"N={self.n} h={self.hidden}"


def build_workloads(quick: bool) -> list[DiscreteWorkload]:
    if quick:
        return [DiscreteWorkload(256, 8), DiscreteWorkload(256, 32)]
    return [DiscreteWorkload(10_000, 64), DiscreteWorkload(10_000, 1024)]


def layer_shapes(hidden: int) -> list[tuple[int, int]]:
    """(in, out) of every Linear layer."""
    return (
        [(LENGTH * hidden + 1, hidden)]
        + [(hidden, hidden)] * (NUM_LAYERS - 1)
        + [(hidden, LENGTH * VOCAB)]
    )


def forward_flops(n: int, hidden: int) -> int:
    return harness.linear_flops(n, layer_shapes(hidden))


def make_inputs(workloads: list[DiscreteWorkload], seed: int = SEED) -> dict[str, np.ndarray]:
    """The embedding 'e{h}', the layers 'w{h}_{k}', 'b{h}_{k}' per hidden width."""
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for hidden in sorted({w.hidden for w in workloads}):
        arrays[f"e{hidden}"] = rng.standard_normal((VOCAB, hidden)).astype(np.float32)
        layers = harness.torch_default_init(rng, layer_shapes(hidden))
        harness.store_linear_layers(arrays, hidden, layers)
    return arrays


def checkpoint_inputs(workdir: Path) -> dict[str, np.ndarray]:
    """The EMA weights of a trained `fm_guide/discrete_checkerboard.py:mask,demo` run, as
    `make_inputs` lays them out (hidden width 128)."""
    from flowjax.train import inference, load_config_file

    file = harness.REPO_ROOT / "configs" / "fm_guide" / "discrete_checkerboard.py"
    flow = inference.load_trained_flow(load_config_file(file, "mask,demo"), str(workdir))
    params = flow.state.ema_params
    hidden = 128
    arrays = {f"e{hidden}": np.asarray(params["token_embed"]["embedding"][...])}
    layers = [params["net"]["hidden"][k] for k in range(NUM_LAYERS)] + [params["net"]["out"]]
    harness.store_linear_layers(
        arrays,
        hidden,
        [(np.asarray(layer["kernel"][...]), np.asarray(layer["bias"][...])) for layer in layers],
    )
    return arrays


def layers_of(inputs: dict[str, np.ndarray], hidden: int) -> list[tuple[np.ndarray, np.ndarray]]:
    return harness.stored_linear_layers(inputs, hidden, NUM_LAYERS + 1)


def fraction_in_support(x: np.ndarray) -> float:
    """Of points (N, 2) of tokens, the fraction on the 8 squares of the board (32 bins each)."""
    cells = np.asarray(x) // 32
    return float(np.mean(np.all(np.asarray(x) < DATA_VOCAB, axis=1) & (cells.sum(axis=1) % 2 == 0)))


def token_histogram(x: np.ndarray) -> np.ndarray:
    return np.bincount(np.asarray(x)[:, 0], minlength=VOCAB) / len(x)


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    return 0.5 * float(np.abs(p - q).sum())


def finish(w: DiscreteWorkload, times: list[float], samples: list[np.ndarray]) -> dict[str, Any]:
    result = harness.median_and_times(times)
    result["nfe"] = w.steps
    result["flops"] = w.steps * forward_flops(w.n, w.hidden)
    result["gflops"] = harness.gflops(result["flops"], result["median_s"])
    result["ms_per_step"] = 1e3 * result["median_s"] / w.steps
    result["fraction_masked"] = float(np.mean(samples[-1] == MASK))
    result["fraction_in_support"] = fraction_in_support(samples[-1])
    return result


# ----------------------------------------------------------------------------------------------
# flowjax side
# ----------------------------------------------------------------------------------------------


def load_weights(model, inputs: dict[str, np.ndarray], hidden: int) -> None:
    """Copies the shared weights into flowjax's `DiscreteMLP`."""
    import jax.numpy as jnp

    model.token_embed.embedding[...] = jnp.asarray(inputs[f"e{hidden}"])
    layers = list(model.net.hidden) + [model.net.out]
    harness.set_flax_linear_weights(layers, layers_of(inputs, hidden))


def flowjax_run_workload(w: DiscreteWorkload, inputs, reps: int, warmup: int = WARMUP):
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from flowjax.models import DiscreteMLP
    from flowjax.paths import MaskSource, MixtureDiscreteProbPath, PolynomialScheduler
    from flowjax.solvers import discrete_sample

    model = DiscreteMLP(
        (LENGTH,),
        vocab_size=VOCAB,
        hidden_dim=w.hidden,
        token_embed_dim=w.hidden,
        num_layers=NUM_LAYERS,
        activation="swish",
        time_embedding="raw",
        rngs=nnx.Rngs(0),
    )
    load_weights(model, inputs, w.hidden)
    graphdef, params = nnx.split(model)
    path = MixtureDiscreteProbPath(PolynomialScheduler(KAPPA_POWER), MaskSource(VOCAB))
    x_init = jnp.full((w.n, LENGTH), MASK, jnp.int32)

    @jax.jit
    def sample(params, key):
        network = nnx.merge(graphdef, params)

        def posterior(x, t):
            return path.posterior_logits(network(x, t), x, t)

        return discrete_sample(key, posterior, x_init, path, step_size=1.0 / w.steps)

    keys = iter(jax.random.split(jax.random.key(SEED), reps + warmup))
    times, _ = harness.time_calls(
        lambda: sample(params, next(keys)), jax.block_until_ready, reps, warmup
    )
    samples = [np.asarray(sample(params, jax.random.key(SEED + s))) for s in (1, 2)]
    result = finish(w, times, samples)
    result["compilations"] = sample._cache_size()
    return result, {"samples": samples[0], "samples_other_key": samples[1]}


# ----------------------------------------------------------------------------------------------
# Peer side: flow_matching on torch (runs in the peer environment, with --peer)
# ----------------------------------------------------------------------------------------------


def torch_posterior(embedding: np.ndarray, layers):
    """The same network in torch, returning probabilities (the reference solver's model)."""
    import torch
    from torch import nn

    class Posterior(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(VOCAB, embedding.shape[1])
            self.net = harness.torch_swish_mlp(layers)
            with torch.no_grad():
                self.embed.weight.copy_(torch.from_numpy(embedding))

        def forward(self, x, t):
            h = self.embed(x).reshape(x.shape[0], -1)
            h = torch.cat([h, t.reshape(-1, 1).expand(x.shape[0], 1).to(h.dtype)], dim=1)
            logits = self.net(h).reshape(x.shape[0], LENGTH, VOCAB)
            # The posterior by Bayes' rule on the mask path: an unmasked token is its own x_1, a
            # masked one keeps the network's logits (the likelihood is the same for every x_1),
            # and the mask token is never data.
            unmasked = (x != MASK)[..., None]
            current = torch.nn.functional.one_hot(x, VOCAB).bool()
            logits = logits.masked_fill(unmasked & ~current, -torch.inf)
            logits[..., MASK] = -torch.inf
            return torch.softmax(logits, dim=-1)

    return Posterior()


def peer_run_workload(w: DiscreteWorkload, inputs, reps: int, warmup: int = WARMUP):
    import torch
    from flow_matching.path import MixtureDiscreteProbPath
    from flow_matching.path.scheduler import PolynomialConvexScheduler
    from flow_matching.solver import MixtureDiscreteEulerSolver

    torch.manual_seed(SEED)
    model = torch_posterior(inputs[f"e{w.hidden}"], layers_of(inputs, w.hidden))
    path = MixtureDiscreteProbPath(PolynomialConvexScheduler(n=KAPPA_POWER))
    solver = MixtureDiscreteEulerSolver(model=model, path=path, vocabulary_size=VOCAB)
    x_init = torch.full((w.n, LENGTH), MASK, dtype=torch.long)

    def sample():
        return solver.sample(
            x_init=x_init, step_size=1.0 / w.steps, time_grid=torch.tensor([0.0, 1.0])
        )

    times, out = harness.time_calls(sample, lambda out: out, reps, warmup)
    samples = [out.numpy()]
    return finish(w, times, samples), {"samples": samples[0]}


# ----------------------------------------------------------------------------------------------
# Orchestration
# ----------------------------------------------------------------------------------------------


def summarise(workloads, flowjax_env, peer_env, flowjax_out, peer_out) -> list[dict]:
    rows = []
    for w in workloads:
        mine = flowjax_env["workloads"][w.name]
        ours = flowjax_out[w.name]
        row: dict[str, Any] = {
            "workload": w.name,
            "size": w.size,
            "steps": w.steps,
            "flowjax_s": mine["median_s"],
            "flowjax_ms_per_step": mine["ms_per_step"],
            "flowjax_gflops": mine["gflops"],
            "flowjax_fraction_masked": mine["fraction_masked"],
            "flowjax_fraction_in_support": mine["fraction_in_support"],
            "tv_noise_floor": total_variation(
                token_histogram(ours["samples"]), token_histogram(ours["samples_other_key"])
            ),
        }
        if peer_env:
            theirs = peer_env["workloads"][w.name]
            row.update(
                peer_s=theirs["median_s"],
                peer_ms_per_step=theirs["ms_per_step"],
                peer_gflops=theirs["gflops"],
                peer_fraction_masked=theirs["fraction_masked"],
                peer_fraction_in_support=theirs["fraction_in_support"],
                speedup=theirs["median_s"] / mine["median_s"],
                tv_flowjax_vs_peer=total_variation(
                    token_histogram(ours["samples"]), token_histogram(peer_out[w.name]["samples"])
                ),
            )
        rows.append(row)
    return rows


def format_table(rows: list[dict], flowjax_env, peer_env) -> str:
    header = (
        f"{'workload':<26} {'size':<14} {'steps':>5} {'flowjax s':>10} {'peer s':>10} "
        f"{'speed-up':>8} | {'fjx ms/step':>11} {'peer ms/step':>12} | {'fjx GF/s':>8} "
        f"{'peer GF/s':>9} | {'in support fjx/peer':>19} | {'TV fjx-peer':>11} {'TV floor':>8}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:

        def get(key, fmt):
            return format(r[key], fmt) if key in r else "-"

        speedup = f"{r['speedup']:.2f}x" if "speedup" in r else "-"
        support = f"{r['flowjax_fraction_in_support']:.4f}/{get('peer_fraction_in_support', '.4f')}"
        lines.append(
            f"{r['workload']:<26} {r['size']:<14} {r['steps']:>5} {r['flowjax_s']:>10.3f} "
            f"{get('peer_s', '10.3f'):>10} {speedup:>8} | "
            f"{r['flowjax_ms_per_step']:>11.2f} {get('peer_ms_per_step', '12.2f'):>12} | "
            f"{r['flowjax_gflops']:>8.1f} {get('peer_gflops', '9.1f'):>9} | {support:>19} | "
            f"{get('tv_flowjax_vs_peer', '11.3f'):>11} {r['tv_noise_floor']:>8.3f}"
        )
    matmul = harness.matmul_summary(flowjax_env, peer_env)
    lines += ["", matmul + "; TV: first token's histograms (129 bins); floor: two flowjax keys"]
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--quick", action="store_true", help="tiny sizes and 2 reps: a smoke check")
    add("--reps", type=int, default=None, help="timed repetitions (default 5; quick 2)")
    harness.add_matmul_arguments(parser)
    harness.add_peer_arguments(parser)
    add("--checkpoint", type=Path, default=None, help="workdir of a trained mask,demo run")
    harness.add_results_arguments(parser)
    args = parser.parse_args(argv)
    harness.fill_defaults(args, {"reps": (5, 2), **harness.MATMUL_DEFAULTS})
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.peer:
        harness.peer_workloads_main(
            args.exchange,
            DiscreteWorkload,
            lambda w, inputs, spec: peer_run_workload(w, inputs, spec["reps"]),
        )
        return
    machine = harness.start_on_cpu()
    workloads = build_workloads(args.quick)
    inputs = (
        make_inputs(workloads) if args.checkpoint is None else checkpoint_inputs(args.checkpoint)
    )

    peer_env, peer_out = harness.run_peer_workloads(
        args, __file__, workloads, inputs, reps=args.reps
    )
    flowjax_env, flowjax_out = harness.measure_workloads(
        "flowjax",
        workloads,
        lambda w: flowjax_run_workload(w, inputs, args.reps),
        args.matmul_size,
        args.matmul_reps,
    )
    machine["load_average_at_end"] = harness.load_averages()

    rows = summarise(workloads, flowjax_env, peer_env, flowjax_out, peer_out)
    table = format_table(rows, flowjax_env, peer_env)
    if args.quick:
        table += "\n--quick: tiny sizes: a smoke check, not a measurement"
    report = {
        **harness.report_header(
            "flowjax discrete_sample vs MixtureDiscreteEulerSolver, same machine, float32, CPU"
        ),
        "settings": {
            "quick": args.quick,
            "reps": args.reps,
            "warmup": WARMUP,
            "weights": str(args.checkpoint) if args.checkpoint else "random (NumPy, seed 0)",
        },
        "machine": machine,
        "rows": rows,
        "flowjax": flowjax_env,
        "peer": peer_env,
    }
    path = harness.results_path("vs_flow_matching_discrete", args, machine)
    harness.write_results(path, report, table)


if __name__ == "__main__":
    main()
