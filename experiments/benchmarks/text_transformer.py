"""Speed of flowjax's text transformer (the DDiT `TextTransformer`) next to the same network in
PyTorch, and of the masked-diffusion sampler with and without skipping unchanged steps.

On the machinery of `harness.py` (timing, the matmul yardstick, MFU, the machine description
and load average, the peer's virtual environment and the exchange with it, the results JSON);
see its docstring for the conventions. Everything runs in float32 on the CPU, in one invocation,
on the same machine.

Part 1, `compare`: the network against a PyTorch implementation of the same network with the
same weights. The torch module (`torch_text_transformer`, written here) is the DDiT of
`flowjax.models.transformer`: token embedding; the conditioning vector c = fc2(silu(fc1(
sinusoidal(t)))) with the 256 sinusoidal features of `flowjax.models.sinusoidal_embedding`
([cos, sin] of 1000 t w_k, w_k = 10000^(-k/128)); per block, pre-norm adaLN-Zero: a Linear
from silu(c) to (shift, scale, gate) x 2, LayerNorm without bias (eps 1e-6, as nnx), a fused
qkv Linear without bias, rotary positions on the pairs (x_{2i}, x_{2i+1}) of each head
(`flowjax.models.attention.apply_rotary`), `torch.nn.functional.scaled_dot_product_attention`,
an output projection without bias, and a GELU (tanh) MLP of width 4d with biases; then a
modulated final norm and the output head. Weights are drawn once with NumPy for every parameter
(kernels and biases uniform(+-1/sqrt(fan_in)) as torch's nn.Linear, the embedding N(0, 1/d),
norm scales 1 + N(0, 0.1^2); nothing is left at the zero initialisation of adaLN-Zero, so every
weight takes part) and copied into both (nnx kernels are (in, out), torch weights (out, in)).
Before anything is timed, the two give the logits of the same 2 sequences (at t = 0.25 and
0.8); the largest absolute difference is reported and the run stops if it exceeds
`LOGIT_TOLERANCE`. The first training loss on the same batch is compared too.

Network: size "tiny" (width d = 128, depth N = 4, 4 heads, conditioning width c = 128, MLP
width m = 512), model vocabulary V + 1 (V data tokens and the mask), V = 50,257 (GPT-2; the
output head dominates) and V = 1,000, sequence length L = 128. Workloads:

  train    one training step on a batch of B = 16 sequences: forward, backward and an Adam
           update (lr 1e-4). The loss is the masked-diffusion cross-entropy: tokens x_1, a time
           t ~ U(0, 1) per sequence, each token kept with probability t and otherwise replaced
           by the mask, loss = sum over masked positions of -log p(x_1 | x_t) / (B L). The
           batches (2, used in turn) are drawn with NumPy and shared. flowjax: a jitted
           functional step (`nnx.split` once, `jax.jit` over the parameters and the optimiser
           state with donation, `nnx.merge` inside, `optax.adam`); torch: a plain loop with
           `torch.optim.Adam` (its default implementation). One untimed step on the first
           batch comes first (its loss, of the shared initial weights, is compared); a timed
           repetition is a block of `--train-steps` steps; the time per step is reported.
  sample   one forward pass over B = 16 sequences at a scalar t, as in one step of a sampler
           (flowjax: `jax.jit` of the model; torch: under `torch.inference_mode`).

tokens/s = B L / time; the ratio is flowjax / torch tokens/s.

FLOPs: the matrix multiplications only (2 m k n per (m, k) @ (k, n)); the embedding lookup,
norms, softmax, rotary, activations and the loss are left out. One forward pass over B
sequences:

  F = 2 B L [N (3 d^2 + d^2 + 2 d m) + d (V + 1)]         qkv, output projection, MLP, head
    + 4 N B L^2 d                                         q k^T and the weights times v
    + 2 B [f c + c^2 + N c 6 d + c 2 d]                   conditioning MLP (f = 256), modulations

and a training step 3 F - 2 B f c (the backward pass costs two products per forward product,
except the input gradient of the first conditioning layer, whose input needs none). Achieved
FLOP/s are reported in GFLOP/s and as fractions of the matmul yardstick measured in this run
(`%own`: the side's own library, `%best`: the faster of the two): the model FLOPs utilisation.

Part 2, `sampler` (flowjax only): `flowjax.solvers.masked_diffusion_sample` on a time-
independent `TextTransformer` (time_conditioning=False, same size, random weights as above,
V = 1,000 data tokens + mask) with the mask path `MixtureDiscreteProbPath(MaskedDiffusion
Scheduler("linear", 1e-3, 0.0), MaskSource(V + 1))`, 1,024 steps from all masks, batch 1 and
16, length 128 and 32: the network evaluations (NFE, `return_nfe=True`) and the wall time with
`reuse_unchanged` False and True, the same key for both (skipping keeps the law of the samples
for a network that does not read t, not the samples of a key:
`tests/test_text_models.py` checks the law on an enumerable language). Each case is
compiled ahead of time, run once untimed, then `--sampler-reps` times (median).

`--quick`: width 32, depth 1, 2 heads, conditioning 32, V = 256 and 64, B = 4, L = 32;
sampler V = 64, 32 steps, batch 1 and 4, length 16; 1 timed repetition: a smoke check.

Timing of part 1: `--warmup` untimed repetitions first (compilation for JAX, allocator warm-up
for torch), then `--reps` timed ones (median). The peer runs first, in its own process (the
harness's `.peer-venv`, torch 2.13.0 on the CPU); JAX is pinned to the CPU.

While it times, /tmp/benchmark_running exists (`harness.benchmark_running_flag`) so that other
jobs on the machine can pause. The load average at the start and at the end is recorded; a run
that starts with a 1-minute load average of 1.0 or more is labelled as taken under load. The
1-minute load average after each workload is recorded too (`load_average_after`); the
benchmark's own threads count in it (up to about 2 on a 2-core machine), more means that
another job shared the cores.

Run, from the repository root, on a quiet machine:

    .venv/bin/python experiments/benchmarks/text_transformer.py
    .venv/bin/python experiments/benchmarks/text_transformer.py --quick    # smoke check
    .venv/bin/python experiments/benchmarks/text_transformer.py --parts sampler --no-peer

Results: the table is printed and written as JSON to
`experiments/benchmarks/results/text_transformer_<tag>.json` (`_quick`, `_flowjax_only` appended
for `--quick`, `--no-peer`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # also when loaded by path (tests)
    sys.path.insert(0, str(HERE))
import harness  # noqa: E402  (timing, yardstick, machine, peer environment, results)

PARTS = ("compare", "sampler")
FREQUENCY_DIM = 256  # sinusoidal features of t (TextTransformer's TimeLabelEmbedding)
LAYER_NORM_EPS = 1e-6  # nnx.LayerNorm's default
LEARNING_RATE = 1e-4
NUM_BATCHES = 2  # training batches, used in turn
CHECK_TIMES = (0.25, 0.8)  # the agreement check: 2 sequences at these times
LOGIT_TOLERANCE = 1e-3  # largest |logit difference| accepted between the two implementations
SAMPLE_TIME = 0.5
QUIET_LOAD = 1.0  # a 1-minute load average at start at or above it labels the run "under load"
SEED = 0


# ----------------------------------------------------------------------------------------------
# The network, workloads and FLOP counts (shared by both sides; plain Python)
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Arch:
    """The text transformer's sizes (TextTransformer's hidden_dim, depth, num_heads, cond_dim)."""

    width: int = 128
    depth: int = 4
    heads: int = 4
    cond: int = 128
    mlp_ratio: float = 4.0

    @property
    def mlp(self) -> int:
        return int(self.mlp_ratio * self.width)


TINY = Arch()  # "tiny": 128 / 4 / 4, cond 128
QUICK_ARCH = Arch(width=32, depth=1, heads=2, cond=32)


@dataclasses.dataclass(frozen=True)
class Workload:
    """Part 1: a training step or a forward pass on `batch` sequences of `length` tokens over a
    vocabulary of `vocab` data tokens (+ the mask)."""

    group: str  # "train" or "sample"
    vocab: int
    batch: int
    length: int

    @property
    def name(self) -> str:
        return f"{self.group}_v{self.vocab}"

    @property
    def size(self) -> str:
        return f"V={self.vocab} B={self.batch} L={self.length}"


@dataclasses.dataclass(frozen=True)
class SamplerCase:
    """Part 2: masked-diffusion sampling of `batch` sequences of `length` tokens."""

    batch: int
    length: int
    steps: int
    vocab: int

    @property
    def name(self) -> str:
        return f"sampler_b{self.batch}_l{self.length}"


def settings_for(quick: bool) -> dict[str, Any]:
    """Sizes of the full run and of --quick."""
    if quick:
        return dict(arch=QUICK_ARCH, vocabs=(256, 64), batch=4, length=32,
                    sampler=dict(batches=(1, 4), lengths=(16,), steps=32, vocab=64))
    return dict(arch=TINY, vocabs=(50_257, 1_000), batch=16, length=128,
                sampler=dict(batches=(1, 16), lengths=(128, 32), steps=1024, vocab=1_000))


def build_workloads(quick: bool) -> list[Workload]:
    s = settings_for(quick)
    return [
        Workload(group, vocab, s["batch"], s["length"])
        for group in ("train", "sample")
        for vocab in s["vocabs"]
    ]


def build_sampler_cases(quick: bool) -> list[SamplerCase]:
    s = settings_for(quick)["sampler"]
    return [
        SamplerCase(batch, length, s["steps"], s["vocab"])
        for length in s["lengths"]
        for batch in s["batches"]
    ]


def forward_flops(arch: Arch, batch: int, length: int, vocab_out: int) -> int:
    """Matmul FLOPs of one forward pass over `batch` sequences of `length` tokens (docstring)."""
    d, n, m, c, f = arch.width, arch.depth, arch.mlp, arch.cond, FREQUENCY_DIM
    tokens = 2 * batch * length * (n * (3 * d * d + d * d + 2 * d * m) + d * vocab_out)
    attention = 4 * n * batch * length**2 * d
    conditioning = 2 * batch * (f * c + c * c + n * c * 6 * d + c * 2 * d)
    return tokens + attention + conditioning


def train_flops(arch: Arch, batch: int, length: int, vocab_out: int) -> int:
    """Matmul FLOPs of one training step: 3 F - 2 B f c."""
    return 3 * forward_flops(arch, batch, length, vocab_out) - 2 * batch * FREQUENCY_DIM * arch.cond


def workload_flops(arch: Arch, w: Workload) -> int:
    count = train_flops if w.group == "train" else forward_flops
    return count(arch, w.batch, w.length, w.vocab + 1)


def parameter_shapes(arch: Arch, vocab_out: int) -> dict[str, tuple[int, ...]]:
    """Every parameter of the TextTransformer, by its nnx path joined with dots, and its shape
    (kernels (in, out)); the torch module has the same names (`.weight` for kernel and scale)."""
    d, c, m = arch.width, arch.cond, arch.mlp
    shapes: dict[str, tuple[int, ...]] = {
        "embedding": (vocab_out, d),
        "cond.fc1.kernel": (FREQUENCY_DIM, c),
        "cond.fc1.bias": (c,),
        "cond.fc2.kernel": (c, c),
        "cond.fc2.bias": (c,),
    }
    for i in range(arch.depth):
        block = {
            "norm1.scale": (d,),
            "qkv.kernel": (d, 3 * d),
            "attn_out.kernel": (d, d),
            "norm2.scale": (d,),
            "fc1.kernel": (d, m),
            "fc1.bias": (m,),
            "fc2.kernel": (m, d),
            "fc2.bias": (d,),
            "modulation.kernel": (c, 6 * d),
            "modulation.bias": (6 * d,),
        }
        shapes.update({f"blocks.{i}.{name}": shape for name, shape in block.items()})
    shapes.update({
        "norm_out.scale": (d,),
        "modulation_out.kernel": (c, 2 * d),
        "modulation_out.bias": (2 * d,),
        "head.kernel": (d, vocab_out),
        "head.bias": (vocab_out,),
    })
    return shapes


def draw_weights(
    rng: np.random.Generator, shapes: dict[str, tuple[int, ...]]
) -> dict[str, np.ndarray]:
    """NumPy draws of every parameter (see the module docstring), float32."""
    fan_in = {name.rsplit(".", 1)[0]: shape[0] for name, shape in shapes.items()
              if name.endswith(".kernel")}
    weights = {}
    for name, shape in shapes.items():
        layer, _, kind = name.rpartition(".")
        if name == "embedding":
            value = rng.normal(0.0, 1.0 / math.sqrt(shape[1]), shape)
        elif kind == "scale":
            value = 1.0 + 0.1 * rng.standard_normal(shape)
        else:  # a kernel or a bias: torch's nn.Linear default
            bound = 1.0 / math.sqrt(fan_in[layer])
            value = rng.uniform(-bound, bound, shape)
        weights[name] = value.astype(np.float32)
    return weights


def weights_of(inputs: dict[str, np.ndarray], vocab: int) -> dict[str, np.ndarray]:
    prefix = f"v{vocab}/"
    return {k[len(prefix):]: v for k, v in inputs.items() if k.startswith(prefix)}


def make_inputs(arch: Arch, workloads: list[Workload], seed: int = SEED) -> dict[str, np.ndarray]:
    """Weights per vocabulary ('v{V}/<name>'), the tokens of the agreement check, the training
    batches and the sampling batch, drawn once with NumPy."""
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for vocab in sorted({w.vocab for w in workloads}):
        weights = draw_weights(rng, parameter_shapes(arch, vocab + 1))
        arrays.update({f"v{vocab}/{name}": value for name, value in weights.items()})
    for w in workloads:
        mask = w.vocab  # the last token of the model's vocabulary
        if w.group == "sample":
            # The agreement check on 2 sequences (any token, masks included), and a batch that
            # is half masked, as midway through sampling.
            arrays[f"check_x_{w.name}"] = rng.integers(0, w.vocab + 1, (2, w.length), np.int32)
            tokens = rng.integers(0, w.vocab, (w.batch, w.length), np.int32)
            masked = rng.uniform(size=tokens.shape) < 0.5
            arrays[f"x_{w.name}"] = np.where(masked, mask, tokens).astype(np.int32)
        else:
            for k in range(NUM_BATCHES):
                x_1 = rng.integers(0, w.vocab, (w.batch, w.length), np.int32)
                t = rng.uniform(size=(w.batch,)).astype(np.float32)
                masked = rng.uniform(size=x_1.shape) >= t[:, None]
                arrays[f"x1_{w.name}_{k}"] = x_1
                arrays[f"t_{w.name}_{k}"] = t
                arrays[f"masked_{w.name}_{k}"] = masked
                arrays[f"xt_{w.name}_{k}"] = np.where(masked, mask, x_1).astype(np.int32)
    return arrays


def batch_of(inputs: dict[str, np.ndarray], w: Workload, k: int) -> tuple[np.ndarray, ...]:
    """(x_t, t, x_1, masked) of training batch k."""
    return tuple(inputs[f"{field}_{w.name}_{k}"] for field in ("xt", "t", "x1", "masked"))


def tokens_result(w: Workload, arch: Arch, times: list[float], extra) -> dict[str, Any]:
    result = {**harness.median_and_times(times), **extra}
    result["load_average_after"] = harness.load_average()
    result["tokens_per_s"] = w.batch * w.length / result["median_s"]
    result["flops"] = workload_flops(arch, w)
    result["gflops"] = harness.gflops(result["flops"], result["median_s"])
    return result


# ----------------------------------------------------------------------------------------------
# flowjax side (runs in the main environment; jax is imported here only)
# ----------------------------------------------------------------------------------------------


def flowjax_text_transformer(
    arch: Arch, vocab_out: int, length: int, weights: dict[str, np.ndarray] | None, **kwargs
):
    """flowjax's TextTransformer of `arch` holding `weights` (by `parameter_shapes` name), or
    with weights None an abstract one (`nnx.eval_shape`: shapes only)."""
    import jax.numpy as jnp
    from flax import nnx

    from flowjax.models import TextTransformer

    model = nnx.eval_shape(lambda: TextTransformer(
        (length,), vocab_size=vocab_out, hidden_dim=arch.width, depth=arch.depth,
        num_heads=arch.heads, cond_dim=arch.cond, mlp_ratio=arch.mlp_ratio, rngs=nnx.Rngs(0),
        **kwargs,
    ))
    if weights is None:
        return model
    names = {".".join(map(str, path)) for path, _ in nnx.to_flat_state(nnx.state(model, nnx.Param))}
    if names != set(weights):
        raise ValueError(f"Parameter names differ: {sorted(names ^ set(weights))}")
    for name, value in weights.items():
        variable = model
        for part in name.split("."):
            variable = variable[int(part)] if part.isdigit() else getattr(variable, part)
        if variable.get_value().shape != value.shape:
            raise ValueError(f"{name}: flowjax {variable.get_value().shape}, weights {value.shape}")
        variable.set_value(jnp.asarray(value))
    return model


def flowjax_masked_loss(logits, x_1, masked):
    import jax.numpy as jnp
    import optax

    ce = optax.softmax_cross_entropy_with_integer_labels(logits, x_1)
    return jnp.sum(jnp.where(masked, ce, 0.0)) / x_1.size


def flowjax_run_workload(
    w: Workload,
    arch: Arch,
    inputs: dict[str, np.ndarray],
    reps: int,
    train_steps: int,
    warmup: int,
    peer_outputs: dict[str, np.ndarray] | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Times one workload with flowjax; returns (timings, outputs to compare with the peer).
    With the peer's outputs of a sampling workload, the logits are checked first; with
    reps = 0 nothing is timed ({}, outputs)."""
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx

    model = flowjax_text_transformer(arch, w.vocab + 1, w.length, weights_of(inputs, w.vocab))
    graphdef, params = nnx.split(model, nnx.Param)
    outputs: dict[str, np.ndarray] = {}
    extra: dict[str, Any] = {}

    if w.group == "train":
        optimizer = optax.adam(LEARNING_RATE)

        def loss_fn(p, x_t, t, x_1, masked):
            return flowjax_masked_loss(nnx.merge(graphdef, p)(x_t, t), x_1, masked)

        def train_step(p, opt_state, x_t, t, x_1, masked):
            loss, grads = jax.value_and_grad(loss_fn)(p, x_t, t, x_1, masked)
            updates, opt_state = optimizer.update(grads, opt_state, p)
            return optax.apply_updates(p, updates), opt_state, loss

        batches = [tuple(map(jnp.asarray, batch_of(inputs, w, k))) for k in range(NUM_BATCHES)]
        if reps == 0:  # the loss of the shared initial weights only
            outputs["first_loss"] = np.asarray(jax.jit(loss_fn)(params, *batches[0]))
            return {}, outputs
        step = jax.jit(train_step, donate_argnums=(0, 1))
        # A first, untimed step on batch 0: its loss is that of the shared initial weights.
        p, o, loss = step(params, optimizer.init(params), *batches[0])
        outputs["first_loss"] = np.asarray(loss)
        state = [p, o]

        def run_block():
            p, o = state
            for i in range(train_steps):
                p, o, loss = step(p, o, *batches[i % NUM_BATCHES])
            state[:] = [p, o]
            return p, o, loss

        times, out = harness.time_calls(run_block, jax.block_until_ready, reps, warmup)
        times = [s / train_steps for s in times]
        jitted = step
        extra["final_loss"] = float(out[-1])
    elif w.group == "sample":

        def forward(p, x, t):
            return nnx.merge(graphdef, p)(x, t)

        jitted = jax.jit(forward)
        check_x = jnp.asarray(inputs[f"check_x_{w.name}"])
        logits = np.asarray(jitted(params, check_x, jnp.asarray(CHECK_TIMES, jnp.float32)))
        outputs["check_logits"] = logits
        if peer_outputs:
            check_agreement(w.name, logits, peer_outputs["check_logits"])
        if reps == 0:
            return {}, outputs
        x, t = jnp.asarray(inputs[f"x_{w.name}"]), jnp.asarray(SAMPLE_TIME, jnp.float32)
        times, _ = harness.time_calls(lambda: jitted(params, x, t), jax.block_until_ready,
                                      reps, warmup)
    else:
        raise ValueError(f"Unknown workload group {w.group!r}; expected 'train' or 'sample'.")
    result = tokens_result(w, arch, times, extra)
    # More than one entry in the jit cache would mean a recompilation between repetitions
    # (the sampling forward pass compiles twice: the check's per-sequence t, the scalar t).
    result["compilations"] = jitted._cache_size()
    return result, outputs


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def check_agreement(name: str, flowjax_logits: np.ndarray, peer_logits: np.ndarray) -> float:
    """The largest |difference| of the two implementations' logits; raises above tolerance."""
    if flowjax_logits.shape != peer_logits.shape:
        raise RuntimeError(
            f"{name}: flowjax logits {flowjax_logits.shape}, torch {peer_logits.shape}"
        )
    diff = max_abs_diff(flowjax_logits, peer_logits)
    harness.log(f"{name}: max |logit difference| flowjax vs torch = {diff:.2e}")
    if not diff <= LOGIT_TOLERANCE:
        raise RuntimeError(
            f"{name}: the torch module and flowjax's TextTransformer disagree: max |logit "
            f"difference| {diff:.3e} > {LOGIT_TOLERANCE:g} on the same weights and tokens; the "
            "timings would not compare the same network."
        )
    return diff


def flowjax_sampler_case(
    case: SamplerCase, arch: Arch, weights: dict[str, np.ndarray], reps: int
) -> dict[str, Any]:
    """Part 2: masked-diffusion sampling with reuse_unchanged False and True, the same key."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    import flowjax

    model = flowjax_text_transformer(
        arch, case.vocab + 1, case.length, weights, time_conditioning=False
    )
    graphdef, params = nnx.split(model, nnx.Param)
    path = flowjax.paths.MixtureDiscreteProbPath(
        flowjax.paths.MaskedDiffusionScheduler("linear", 1e-3, 0.0),
        flowjax.paths.MaskSource(case.vocab + 1),
    )
    x_init = jnp.full((case.batch, case.length), case.vocab, jnp.int32)
    key = jax.random.key(SEED)
    result: dict[str, Any] = {"batch": case.batch, "length": case.length, "steps": case.steps}
    for reuse in (False, True):

        def sample(p, key, x_init, reuse=reuse):
            return flowjax.solvers.masked_diffusion_sample(
                key, nnx.merge(graphdef, p), x_init, path, step_size=1.0 / case.steps,
                reuse_unchanged=reuse, return_nfe=True,
            )

        compiled = jax.jit(sample).lower(params, key, x_init).compile()
        times, (x, nfe) = harness.time_calls(
            lambda compiled=compiled: compiled(params, key, x_init), jax.block_until_ready, reps, 1
        )
        label = "skip" if reuse else "no_skip"
        record = {**harness.median_and_times(times), "nfe": int(nfe),
                  "load_average_after": harness.load_average()}
        record["tokens_per_s"] = case.batch * case.length / record["median_s"]
        record["flops"] = int(nfe) * forward_flops(arch, case.batch, case.length, case.vocab + 1)
        record["gflops"] = harness.gflops(record["flops"], record["median_s"])
        record["fraction_masked"] = float(np.mean(np.asarray(x) == case.vocab))
        result[label] = record
    result["speedup"] = result["no_skip"]["median_s"] / result["skip"]["median_s"]
    return result


# ----------------------------------------------------------------------------------------------
# Peer side: the same network in PyTorch (runs in the peer environment, with --peer)
# ----------------------------------------------------------------------------------------------


def torch_text_transformer(arch: Arch, vocab_out: int, weights: dict[str, np.ndarray]):
    """The DDiT text transformer in torch, called as model(x, t) with tokens x (B, L) and t a
    scalar or (B,); logits (B, L, vocab_out). `weights` by `parameter_shapes` name."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    d, heads, c = arch.width, arch.heads, arch.cond

    def layer_norm():
        return nn.LayerNorm(d, eps=LAYER_NORM_EPS, bias=False)

    def modulate(x, shift, scale):
        return x * (1 + scale[:, None, :]) + shift[:, None, :]

    def rotary(x, cos, sin):
        """Rotates the pairs (x_{2i}, x_{2i+1}) of x (B, L, H, hd) by the angles of cos, sin
        (L, hd / 2), as flowjax.models.attention.apply_rotary."""
        pairs = x.reshape(*x.shape[:-1], -1, 2)
        even, odd = pairs[..., 0], pairs[..., 1]
        cos, sin = cos[None, :, None, :], sin[None, :, None, :]
        return torch.stack([even * cos - odd * sin, even * sin + odd * cos], -1).reshape(x.shape)

    class Conditioning(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(FREQUENCY_DIM, c)
            self.fc2 = nn.Linear(c, c)

        def forward(self, t):
            half = FREQUENCY_DIM // 2
            freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32) / half)
            angles = (1000.0 * t)[:, None] * freqs[None, :]
            features = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
            return self.fc2(F.silu(self.fc1(features)))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm1 = layer_norm()
            self.qkv = nn.Linear(d, 3 * d, bias=False)
            self.attn_out = nn.Linear(d, d, bias=False)
            self.norm2 = layer_norm()
            self.fc1 = nn.Linear(d, arch.mlp)
            self.fc2 = nn.Linear(arch.mlp, d)
            self.modulation = nn.Linear(c, 6 * d)

        def forward(self, x, c, cos, sin):
            shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(F.silu(c)).chunk(6, -1)
            b, length, _ = x.shape
            h = modulate(self.norm1(x), shift1, scale1)
            q, k, v = self.qkv(h).reshape(b, length, 3 * heads, -1).chunk(3, dim=2)
            q, k = rotary(q, cos, sin), rotary(k, cos, sin)
            out = F.scaled_dot_product_attention(
                q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
            )
            out = self.attn_out(out.transpose(1, 2).reshape(b, length, d))
            x = x + gate1[:, None, :] * out
            h = modulate(self.norm2(x), shift2, scale2)
            h = self.fc2(F.gelu(self.fc1(h), approximate="tanh"))
            return x + gate2[:, None, :] * h

    class TextTransformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Parameter(torch.empty(vocab_out, d))
            self.cond = Conditioning()
            self.blocks = nn.ModuleList([Block() for _ in range(arch.depth)])
            self.norm_out = layer_norm()
            self.modulation_out = nn.Linear(c, 2 * d)
            self.head = nn.Linear(d, vocab_out)

        def forward(self, x, t):
            b, length = x.shape
            h = F.embedding(x, self.embedding)
            t = torch.as_tensor(t, dtype=torch.float32).reshape(-1).expand(b)
            cond = self.cond(t)
            head_dim = d // heads
            inverse = 10_000.0 ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
            angles = torch.arange(length, dtype=torch.float32)[:, None] * inverse
            cos, sin = torch.cos(angles), torch.sin(angles)
            for block in self.blocks:
                h = block(h, cond, cos, sin)
            shift, scale = self.modulation_out(F.silu(cond)).chunk(2, -1)
            return self.head(modulate(self.norm_out(h), shift, scale))

    model = TextTransformer()
    state = {}
    for name, value in weights.items():
        tensor = torch.from_numpy(np.ascontiguousarray(value))
        if name.endswith(".kernel"):
            name, tensor = name[: -len(".kernel")] + ".weight", tensor.T.contiguous()
        elif name.endswith(".scale"):
            name = name[: -len(".scale")] + ".weight"
        state[name] = tensor
    model.load_state_dict(state, strict=True)  # every name and shape must match
    return model


def torch_masked_loss(logits, x_1, masked):
    import torch.nn.functional as F

    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x_1.reshape(-1), reduction="none")
    return (ce * masked.reshape(-1)).sum() / x_1.numel()


def peer_run_workload(
    w: Workload, inputs: dict[str, np.ndarray], spec: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Times one workload with torch; returns (timings, outputs); reps = 0: ({}, outputs)."""
    import torch

    torch.manual_seed(SEED)
    arch = Arch(**spec["arch"])
    reps, train_steps, warmup = spec["reps"], spec["train_steps"], spec["warmup"]
    model = torch_text_transformer(arch, w.vocab + 1, weights_of(inputs, w.vocab))
    outputs: dict[str, np.ndarray] = {}
    extra: dict[str, Any] = {}

    if w.group == "train":
        batches = [
            (torch.from_numpy(x_t).long(), torch.from_numpy(t), torch.from_numpy(x_1).long(),
             torch.from_numpy(masked).float())
            for x_t, t, x_1, masked in (batch_of(inputs, w, k) for k in range(NUM_BATCHES))
        ]
        optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)

        def train_step(x_t, t, x_1, masked):
            loss = torch_masked_loss(model(x_t, t), x_1, masked)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            return loss

        if reps == 0:  # the loss of the shared initial weights only
            with torch.no_grad():
                outputs["first_loss"] = torch_masked_loss(model(*batches[0][:2]),
                                                          *batches[0][2:]).numpy()
            return {}, outputs
        # A first, untimed step on batch 0: its loss is that of the shared initial weights.
        outputs["first_loss"] = train_step(*batches[0]).detach().numpy()

        def run_block():
            for i in range(train_steps):
                loss = train_step(*batches[i % NUM_BATCHES])
            return loss.item()

        times, loss = harness.time_calls(run_block, lambda out: out, reps, warmup)
        times = [s / train_steps for s in times]
        extra["final_loss"] = loss
    elif w.group == "sample":
        check_x = torch.from_numpy(inputs[f"check_x_{w.name}"]).long()
        x = torch.from_numpy(inputs[f"x_{w.name}"]).long()
        with torch.inference_mode():
            outputs["check_logits"] = model(check_x, torch.tensor(CHECK_TIMES)).numpy()
            if reps == 0:
                return {}, outputs
            times, _ = harness.time_calls(
                lambda: model(x, torch.tensor(SAMPLE_TIME)), lambda out: out, reps, warmup
            )
    else:
        raise ValueError(f"Unknown workload group {w.group!r}; expected 'train' or 'sample'.")
    return tokens_result(w, arch, times, extra), outputs


def peer_main(exchange: Path) -> None:
    """The peer process: the timed workloads, or with `check_only` in the spec the outputs of
    the agreement check alone."""
    spec = json.loads((exchange / harness.SPEC_FILE).read_text())
    if not spec.get("check_only"):
        harness.peer_workloads_main(exchange, Workload, peer_run_workload)
        return
    spec, inputs = harness.read_exchange(exchange)
    outputs = {}
    for fields in spec["workloads"]:
        w = Workload(**fields)
        outputs[w.name] = peer_run_workload(w, inputs, spec)[1]
    harness.write_exchange(exchange, harness.peer_environment(), outputs)


# ----------------------------------------------------------------------------------------------
# Orchestration: the tables and the two sides in turn
# ----------------------------------------------------------------------------------------------


def summarise(workloads, flowjax_env, peer_env, flowjax_out, peer_out) -> tuple[float, list]:
    """One row per workload: tokens/s, ratio, GFLOP/s and fractions of the matmul FLOP/s."""
    own = {"flowjax": flowjax_env["matmul"]["gflops"]}
    if peer_env:
        own["peer"] = peer_env["matmul"]["gflops"]
    best = max(own.values())
    rows = []
    for w in workloads:
        row: dict[str, Any] = {"workload": w.name, "group": w.group, "size": w.size}
        for side, env in (("flowjax", flowjax_env), ("peer", peer_env)):
            if not env:
                continue
            r = env["workloads"][w.name]
            row[f"{side}_s"] = r["median_s"]
            row[f"{side}_tokens_per_s"] = r["tokens_per_s"]
            row[f"{side}_gflops"] = r["gflops"]
            row[f"{side}_mfu_of_own_matmul"] = harness.mfu(r["gflops"], own[side])
            row[f"{side}_mfu_of_best_matmul"] = harness.mfu(r["gflops"], best)
        row["flops"] = flowjax_env["workloads"][w.name]["flops"]
        if peer_env:
            row["ratio"] = row["flowjax_tokens_per_s"] / row["peer_tokens_per_s"]
            field = "check_logits" if w.group == "sample" else "first_loss"
            row["compared"] = field
            row["max_abs_diff"] = max_abs_diff(flowjax_out[w.name][field], peer_out[w.name][field])
        rows.append(row)
    return best, rows


def format_table(rows, flowjax_env, peer_env, best: float) -> str:
    def pct(x):
        return f"{100 * x:6.1f}%" if x is not None else f"{'-':>7}"

    def num(x, spec):
        return format(x, spec) if x is not None else "-"

    header = (
        f"{'workload':<14} {'size':<22} {'fjx tok/s':>10} {'torch tok/s':>11} {'ratio':>6} | "
        f"{'fjx GF/s':>8} {'%own':>7} {'%best':>7} | {'tch GF/s':>8} {'%own':>7} {'%best':>7} | "
        f"{'max|d|':>8}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r['workload']:<14} {r['size']:<22} {r['flowjax_tokens_per_s']:10.0f} "
            f"{num(r.get('peer_tokens_per_s'), '.0f'):>11} "
            f"{num(r.get('ratio'), '.2f'):>6} | "
            f"{r['flowjax_gflops']:8.1f} {pct(r['flowjax_mfu_of_own_matmul'])} "
            f"{pct(r['flowjax_mfu_of_best_matmul'])} | "
            f"{num(r.get('peer_gflops'), '.1f'):>8} {pct(r.get('peer_mfu_of_own_matmul'))} "
            f"{pct(r.get('peer_mfu_of_best_matmul'))} | "
            f"{num(r.get('max_abs_diff'), '.1e'):>8}"
        )
    lines += [
        "",
        harness.matmul_summary(flowjax_env, peer_env) + f" (best {best:.1f}); ratio = flowjax / "
        "torch tokens/s; max|d|: logits (sample rows), first loss (train rows)",
    ]
    return "\n".join(lines)


def format_sampler_table(results: list[dict[str, Any]]) -> str:
    header = (
        f"{'sampler case':<18} {'B':>3} {'L':>4} {'steps':>5} | {'NFE':>5} {'time s':>8} "
        f"{'tok/s':>8} | {'NFE skip':>8} {'time s':>8} {'tok/s':>8} | {'speed-up':>8}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        a, b = r["no_skip"], r["skip"]
        lines.append(
            f"{r['case']:<18} {r['batch']:>3} {r['length']:>4} {r['steps']:>5} | "
            f"{a['nfe']:>5} {a['median_s']:8.3f} {a['tokens_per_s']:8.1f} | "
            f"{b['nfe']:>8} {b['median_s']:8.3f} {b['tokens_per_s']:8.1f} | "
            f"{r['speedup']:7.2f}x"
        )
    lines += [
        "",
        "reuse_unchanged False (NFE, time) vs True (NFE skip, time)",
    ]
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--quick", action="store_true", help="tiny sizes and 1 rep: a smoke check")
    add("--parts", default=",".join(PARTS), help=f"comma-separated among {', '.join(PARTS)}")
    add("--reps", type=int, default=None, help="timed repetitions of part 1 (default 5; quick 1)")
    add("--warmup", type=int, default=None, help="untimed repetitions first (default 2)")
    add("--train-steps", type=int, default=None, help="steps per timed repetition (2; quick 1)")
    add("--sampler-reps", type=int, default=None, help="timed sampler runs (default 2; quick 1)")
    add("--check-only", action="store_true",
        help="only check that the torch module gives flowjax's logits (the peer; JSON to --out)")
    harness.add_matmul_arguments(parser)
    harness.add_peer_arguments(parser)
    harness.add_results_arguments(parser)
    args = parser.parse_args(argv)
    harness.fill_defaults(args, {
        "reps": (5, 1), "warmup": (2, 2), "train_steps": (2, 1), "sampler_reps": (2, 1),
        **harness.MATMUL_DEFAULTS,
    })
    args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(args.parts) - set(PARTS))
    if unknown or not args.parts:
        parser.error(f"unknown or no parts {unknown}; choose among {list(PARTS)}")
    return args


def run_check(args: argparse.Namespace, arch: Arch) -> dict[str, Any]:
    """The agreement check alone: logits and first training loss of both sides, nothing
    timed; raises if the logits differ by more than LOGIT_TOLERANCE."""
    if args.no_peer:
        raise SystemExit("--check-only compares with the peer; it cannot run with --no-peer.")
    workloads = build_workloads(args.quick)
    inputs = make_inputs(arch, workloads)
    spec = {
        "check_only": True, "workloads": [dataclasses.asdict(w) for w in workloads],
        "arch": dataclasses.asdict(arch), "reps": 0, "train_steps": 0, "warmup": 0,
    }
    peer_env, peer_out = harness.run_peer(args, __file__, spec, inputs)
    diffs = {}
    for w in workloads:
        _, out = flowjax_run_workload(w, arch, inputs, 0, 0, 0, peer_out[w.name])
        field = "check_logits" if w.group == "sample" else "first_loss"
        diffs[w.name] = {"compared": field, "max_abs_diff": max_abs_diff(
            out[field], peer_out[w.name][field])}
        harness.log(f"{w.name}: max |{field} difference| = {diffs[w.name]['max_abs_diff']:.2e}")
    logit_diffs = [d["max_abs_diff"] for d in diffs.values() if d["compared"] == "check_logits"]
    return {"check_only": True, "max_abs_logit_diff": max(logit_diffs), "checks": diffs,
            "peer": peer_env}


def run_compare(args: argparse.Namespace, arch: Arch) -> tuple[dict[str, Any], str]:
    """Part 1: the peer's workloads, then flowjax's (after the agreement check)."""
    workloads = build_workloads(args.quick)
    inputs = make_inputs(arch, workloads)
    peer_env, peer_out = harness.run_peer_workloads(
        args, __file__, workloads, inputs, arch=dataclasses.asdict(arch), reps=args.reps,
        train_steps=args.train_steps, warmup=args.warmup,
    )
    flowjax_env, flowjax_out = harness.measure_workloads(
        "flowjax",
        workloads,
        lambda w: flowjax_run_workload(
            w, arch, inputs, args.reps, args.train_steps, args.warmup, peer_out.get(w.name)
        ),
        args.matmul_size,
        args.matmul_reps,
    )
    best, rows = summarise(workloads, flowjax_env, peer_env, flowjax_out, peer_out)
    logit_diffs = [r["max_abs_diff"] for r in rows if r.get("compared") == "check_logits"]
    part = {
        "max_abs_logit_diff": max(logit_diffs) if logit_diffs else None,
        "best_matmul_gflops": best,
        "rows": rows,
        "flowjax": flowjax_env,
        "peer": peer_env,
    }
    return part, format_table(rows, flowjax_env, peer_env, best)


def run_sampler(args: argparse.Namespace, arch: Arch) -> tuple[dict[str, Any], str]:
    """Part 2: every sampler case with and without skipping unchanged steps."""
    cases = build_sampler_cases(args.quick)
    rng = np.random.default_rng(SEED + 1)
    weights = draw_weights(rng, parameter_shapes(arch, cases[0].vocab + 1))
    results = []
    for case in cases:
        harness.log(f"flowjax: {case.name} ({case.steps} steps) ...")
        results.append(
            {"case": case.name, **flowjax_sampler_case(case, arch, weights, args.sampler_reps)}
        )
    part = {
        "vocab": cases[0].vocab,
        "path": "MixtureDiscreteProbPath(MaskedDiffusionScheduler('linear', 1e-3, 0.0), "
                "MaskSource(V + 1))",
        "time_conditioning": False,
        "cases": results,
    }
    return part, format_sampler_table(results)


def fmt_load(averages) -> str:
    return "n/a" if averages is None else " ".join(f"{a:.2f}" for a in averages)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.peer:
        peer_main(args.exchange)
        return
    machine = harness.start_on_cpu()
    settings = settings_for(args.quick)
    arch = settings["arch"]
    report: dict[str, Any] = {
        **harness.report_header(
            "flowjax TextTransformer vs the same network in PyTorch; masked-diffusion sampler "
            "with and without skipping unchanged steps; float32, CPU"
        ),
        "settings": {
            "quick": args.quick,
            "parts": args.parts,
            "arch": dataclasses.asdict(arch),
            "frequency_dim": FREQUENCY_DIM,
            "reps": args.reps,
            "warmup": args.warmup,
            "train_steps_per_rep": args.train_steps,
            "sampler_reps": args.sampler_reps,
            "matmul_size": args.matmul_size,
            "learning_rate": LEARNING_RATE,
            "logit_tolerance": LOGIT_TOLERANCE,
            "flop_counting": (
                "matmuls only; F = 2BL[N(3d^2 + d^2 + 2dm) + d(V+1)] + 4NBL^2 d "
                "+ 2B[fc + c^2 + 6Ncd + 2cd]; train 3F - 2Bfc; sampler NFE*F"
            ),
        },
        "machine": machine,
    }
    if args.check_only:
        report.update(run_check(args, arch))
        if args.out:
            harness.write_results(args.out, report)
        return
    tables = []
    with harness.benchmark_running_flag():
        if "compare" in args.parts:
            part, table = run_compare(args, arch)
            report.update(part)
            tables.append(table)
        if "sampler" in args.parts:
            report["sampler"], table = run_sampler(args, arch)
            tables.append(table)
    machine["load_average_at_end"] = harness.load_averages()
    start = machine["load_average_at_start"]
    report["under_load"] = bool(start and start[0] >= QUIET_LOAD)
    table = "\n\n".join(tables)
    table += (
        f"\nload average (1, 5, 15 min) at start {fmt_load(start)}, at end "
        f"{fmt_load(machine['load_average_at_end'])} (the end includes this benchmark's own "
        "threads)"
    )
    loads = [
        report[side]["workloads"][name]["load_average_after"]
        for side in ("peer", "flowjax") if report.get(side)
        for name in report[side]["workloads"]
    ] + [c[k]["load_average_after"] for c in report.get("sampler", {}).get("cases", [])
         for k in ("no_skip", "skip")]
    if loads and None not in loads:
        table += f"\n1-minute load average after each workload: {min(loads):.2f}-{max(loads):.2f}"
    if report["under_load"]:
        table += f"\nTAKEN UNDER LOAD: 1-minute load average {start[0]:.2f} at start"
    if args.quick:
        table += "\n--quick: tiny sizes, tiny matmul yardstick: a smoke check, not a measurement"
    harness.write_results(harness.results_path("text_transformer", args, machine), report, table)


if __name__ == "__main__":
    main()
