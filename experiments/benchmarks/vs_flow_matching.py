"""Speed of flowjax next to the PyTorch reference (flow_matching 1.0.10), on one CPU machine.

Both libraries run the same workloads in one invocation of this script, one after the other,
on the same machine, in float32, with the same network weights and the same inputs:

  train        one training step of the 2D checkerboard example (Flow Matching Guide and
               Code, section 1 / the reference's 2D example): batch 4096, CondOT path,
               x_0 ~ N(0, I), x_1 from a 4x4 checkerboard on [-2, 2)^2, t ~ U[0, 1], mean squared
               error to dx_t, Adam with lr 1e-3. Drawing the batch is inside the timed region on
               both sides (in the jitted step for flowjax, `torch.rand*` in the loop for the
               peer). flowjax: a jitted functional step (`nnx.split` once, `jax.jit` over the
               parameter and optimiser state with donation, `nnx.merge` inside, `optax.adam`).
               peer: a plain PyTorch loop with `torch.optim.Adam` and
               `AffineProbPath(CondOTScheduler())`.
  sample       sampling the velocity MLP with the midpoint rule, step 0.05 (20 steps, 40
               evaluations) from fixed x_0 of N = 1,000 and N = 50,000 points. flowjax:
               `ode_sample` under `jax.jit`; peer: `ODESolver(model).sample(...)`.
  small        a small MLP (hidden width 64) with 100 Euler steps (step 0.01) at N = 1,000:
               a per-step-overhead-bound workload.
  likelihood   exact log-likelihood, 512-wide MLP, N = 10,000 checkerboard points, midpoint
               step 0.05 from t = 1 to 0: flowjax `ode_log_likelihood(..., exact_divergence=True)`,
               peer `ODESolver(model).compute_likelihood(..., exact_divergence=True)`.
  matmul       the machine's float32 matmul throughput, 2048 x 2048 @ 2048 x 2048, in JAX and in
               torch: the yardstick for the achieved FLOP/s of every workload.

The network is the one of the reference's 2D example: cat[x, t] (3 inputs) -> 4 x (Linear of
width 512 + Swish) -> Linear to 2; in flowjax `MLP(2, hidden_dim=512, num_layers=4,
activation="swish", time_embedding="raw")`, in torch `nn.Linear` + `nn.SiLU` (Swish). Weights are
drawn once with NumPy (torch's default uniform(+-1/sqrt(fan_in)) initialisation) and loaded into
both, so the sampled points and log-likelihoods of the two libraries are compared too (column
max|d|: the largest absolute difference over all outputs; expect float32 round-off, ~1e-5).

Timing: every workload is run twice untimed first (compilation for JAX, allocator warm-up for
torch), then `--reps` times; the median is reported. JAX results are waited for with
`jax.block_until_ready`; torch on the CPU is synchronous. A training repetition is a block of
`--train-steps` consecutive steps and the time per step is reported.

FLOPs are counted analytically for the matrix multiplications only (elementwise work, the
activations and the solver's vector updates are left out). With F(N) = 2 N sum(in * out) over
the five Linear layers (3->h, 3 x h->h, h->2) for one evaluation of the MLP on N points:
  - sampling: NFE * F(N), NFE the number of network evaluations (counted on each side: the
    peer's model counts its calls, flowjax's comes from its solver's step grid);
  - training step: forward F + weight gradients F + input gradients of every layer but the
    first (the network input needs no gradient) F - 2 N 3 h, i.e. 3 F - 6 N h;
  - exact likelihood (D = 2), counted per side because the two sides do different work. The
    peer, at each of its NFE evaluations, evaluates the field and runs D reverse-mode passes
    d u_i / d x (autograd.grad with respect to x only, so no weight-gradient products):
    NFE * (1 + D) * F. flowjax evaluates the field and pushes D one-hot tangents through it
    in forward mode (JVPs, batched by vmap); but the divergence of the midpoint rule's first
    stage only feeds the log-density part of the half-step state, which the field does not
    read, so XLA removes it: NFE * F + steps * D * F, i.e. 80 F instead of 120 F for 20
    midpoint steps (seen in the compiled program: per step 10 matmuls on N rows for the two
    field evaluations and 5 on D*N rows for one batch of tangents; a test guards this).
    Every tangent or cotangent pass costs the matmuls of one forward pass.
Achieved FLOP/s are reported as GFLOP/s, as a fraction of the best matmul FLOP/s measured in
this run (either library), and of the library's own matmul FLOP/s.

The peer runs in its own virtual environment (default `.peer-venv` at the repository root, set
up if missing with `pip install torch==2.13.0 flow-matching==1.0.10 tqdm numpy`); this script
invokes itself there with `--peer` and exchanges inputs and results through a temporary
directory (the machinery of `harness.py`, shared by the benchmarks here, which describes it).
The peer side imports neither jax nor flowjax. JAX is pinned to the CPU so that both libraries
use the same processor. On a machine where pip would fetch a CUDA build of torch, pass
`--torch-index-url https://download.pytorch.org/whl/cpu`.

Run, from the repository root, on a quiet machine:

    .venv/bin/python experiments/benchmarks/vs_flow_matching.py
    .venv/bin/python experiments/benchmarks/vs_flow_matching.py --quick        # smoke check
    .venv/bin/python experiments/benchmarks/vs_flow_matching.py --only sample,likelihood --reps 10

Both libraries use all the cores they see by default (XLA's thread pool, torch's intra-op
threads, reported in the results); to compare on fewer cores, pin the whole run, e.g.
`taskset -c 0-7 .venv/bin/python ...` (the peer process inherits the affinity). The table is
printed and written as JSON to `experiments/benchmarks/results/vs_flow_matching_<tag>.json`
(tag: `--tag`, by default the CPU model and core count; `_quick` is appended for `--quick`).
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
import harness  # noqa: E402  (timing, yardstick, machine, peer environment, results)

DATA_DIM = 2  # the 2D example
IN_DIM = DATA_DIM + 1  # cat[x, t]
NUM_LAYERS = 4
LEARNING_RATE = 1e-3
GROUPS = ("train", "sample", "small", "likelihood")
WARMUP = 2
SEED = 0


# ----------------------------------------------------------------------------------------------
# Workloads and FLOP counts (shared by both sides; plain Python)
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Workload:
    """One benchmark case. `n` is the batch size (train) or the number of points."""

    group: str  # one of GROUPS
    n: int
    hidden: int
    method: str = "midpoint"
    step_size: float = 0.05

    @property
    def name(self) -> str:
        return f"{self.group}_n{self.n}"

    @property
    def size(self) -> str:
        label = "B" if self.group == "train" else "N"
        return f"{label}={self.n} h={self.hidden}"


def build_workloads(quick: bool, only: list[str] | None = None) -> list[Workload]:
    """The benchmark cases, full size or `--quick` (same networks and solvers, tiny N)."""
    if quick:
        cases = [
            Workload("train", 256, 512),
            Workload("sample", 64, 512),
            Workload("sample", 512, 512),
            Workload("small", 64, 64, method="euler", step_size=0.01),
            Workload("likelihood", 128, 512),
        ]
    else:
        cases = [
            Workload("train", 4096, 512),
            Workload("sample", 1_000, 512),
            Workload("sample", 50_000, 512),
            Workload("small", 1_000, 64, method="euler", step_size=0.01),
            Workload("likelihood", 10_000, 512),
        ]
    if only:
        cases = [w for w in cases if w.group in only]
    return cases


def layer_shapes(hidden: int) -> list[tuple[int, int]]:
    """(in, out) of every Linear layer of the MLP."""
    return [(IN_DIM, hidden)] + [(hidden, hidden)] * (NUM_LAYERS - 1) + [(hidden, DATA_DIM)]


def forward_flops(n: int, hidden: int) -> int:
    """Matmul FLOPs of one MLP evaluation on n points: 2 n sum(in * out)."""
    return harness.linear_flops(n, layer_shapes(hidden))


EVALS_PER_STEP = {"euler": 1, "midpoint": 2}
# Solver stages whose divergence enters the log-density update, in flowjax's compiled solve
# (the midpoint rule's first stage does not; see the module docstring).
FLOWJAX_DIVERGENCE_STAGES = {"euler": 1, "midpoint": 1}


def workload_flops(w: Workload, nfe: int | None, side: str) -> int:
    """Matmul FLOPs of one timed unit (a training step, or one whole solve) on `side`."""
    f = forward_flops(w.n, w.hidden)
    if w.group == "train":
        return 3 * f - 2 * w.n * IN_DIM * w.hidden
    if w.group == "likelihood":
        if side == "flowjax":
            steps = nfe // EVALS_PER_STEP[w.method]
            return nfe * f + steps * FLOWJAX_DIVERGENCE_STAGES[w.method] * DATA_DIM * f
        return nfe * (1 + DATA_DIM) * f
    return nfe * f


def workload_result(w: Workload, side: str, times: list[float], nfe, extra) -> dict[str, Any]:
    """The timings of one workload on `side`, its NFE, FLOPs per timed unit and GFLOP/s."""
    result = {**harness.median_and_times(times), **extra, "nfe": nfe}
    result["flops"] = workload_flops(w, nfe, side)
    result["gflops"] = harness.gflops(result["flops"], result["median_s"])
    return result


# ----------------------------------------------------------------------------------------------
# Shared inputs: weights and points drawn once with NumPy, loaded by both sides
# ----------------------------------------------------------------------------------------------


def checkerboard_numpy(rng: np.random.Generator, n: int) -> np.ndarray:
    """n points uniform on the 8 black cells of a 4 x 4 checkerboard over [-2, 2)^2.

    Cell (i, j), i, j in 0..3, is black when i + j is even: pick the column i, then one of
    the two rows of its parity. The torch and JAX samplers below use the same construction.
    """
    col = rng.integers(0, 4, size=n)
    row = 2 * rng.integers(0, 2, size=n) + col % 2
    offset = rng.uniform(size=(n, 2))
    return (np.stack([col, row], axis=1) + offset - 2.0).astype(np.float32)


def make_inputs(workloads: list[Workload], seed: int = SEED) -> dict[str, np.ndarray]:
    """Weights per hidden width ('w{h}_{layer}', 'b{h}_{layer}') and the start points per case."""
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for hidden in sorted({w.hidden for w in workloads}):
        layers = harness.torch_default_init(rng, layer_shapes(hidden))
        harness.store_linear_layers(arrays, hidden, layers)
    for w in workloads:
        if w.group in ("sample", "small"):
            arrays[f"x_{w.name}"] = rng.standard_normal((w.n, DATA_DIM)).astype(np.float32)
        elif w.group == "likelihood":
            arrays[f"x_{w.name}"] = checkerboard_numpy(rng, w.n)
    return arrays


def weights_for(inputs: dict[str, np.ndarray], hidden: int) -> list[tuple[np.ndarray, np.ndarray]]:
    return harness.stored_linear_layers(inputs, hidden, NUM_LAYERS + 1)


# ----------------------------------------------------------------------------------------------
# flowjax side (runs in the main environment; jax is imported here only)
# ----------------------------------------------------------------------------------------------


def flowjax_mlp(weights: list[tuple[np.ndarray, np.ndarray]], hidden: int):
    """flowjax's MLP with the given weights."""
    from flax import nnx

    from flowjax.models import MLP

    model = MLP(
        DATA_DIM,
        hidden_dim=hidden,
        num_layers=NUM_LAYERS,
        activation="swish",
        time_embedding="raw",
        rngs=nnx.Rngs(0),
    )
    harness.set_flax_linear_weights(list(model.hidden) + [model.out], weights)
    return model


def flowjax_checkerboard(key, n: int):
    import jax
    import jax.numpy as jnp

    k_col, k_row, k_off = jax.random.split(key, 3)
    col = jax.random.randint(k_col, (n,), 0, 4)
    row = 2 * jax.random.randint(k_row, (n,), 0, 2) + col % 2
    offset = jax.random.uniform(k_off, (n, 2))
    return jnp.stack([col, row], axis=1).astype(jnp.float32) + offset - 2.0


def flowjax_nfe(w: Workload, time_grid=(0.0, 1.0)) -> int:
    """Network evaluations of one fixed-step solve, from flowjax's own step grid."""
    from flowjax.solvers.integrate import EVALS_PER_STEP, static_time_grid, step_nodes

    nodes, _ = step_nodes(static_time_grid(time_grid), w.step_size)
    return (len(nodes) - 1) * EVALS_PER_STEP[w.method]


def flowjax_run_workload(
    w: Workload, inputs: dict[str, np.ndarray], reps: int, train_steps: int, warmup: int = WARMUP
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Times one workload with flowjax; returns (timings, outputs to compare with the peer)."""
    import jax
    import optax
    from flax import nnx

    import flowjax

    model = flowjax_mlp(weights_for(inputs, w.hidden), w.hidden)
    graphdef, params = nnx.split(model, nnx.Param)
    outputs: dict[str, np.ndarray] = {}
    extra: dict[str, Any] = {}

    if w.group == "train":
        path = flowjax.paths.CondOTProbPath()
        optimizer = optax.adam(LEARNING_RATE)
        batch = w.n

        def train_step(params, opt_state, key):
            key, k_0, k_1, k_t = jax.random.split(key, 4)
            x_0 = jax.random.normal(k_0, (batch, DATA_DIM))
            x_1 = flowjax_checkerboard(k_1, batch)
            t = jax.random.uniform(k_t, (batch,))

            def loss_fn(p):
                return flowjax.losses.cfm_loss(nnx.merge(graphdef, p), path, x_0, x_1, t)

            loss, grads = jax.value_and_grad(loss_fn)(params)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, key, loss

        step = jax.jit(train_step, donate_argnums=(0, 1, 2))
        state = [params, optimizer.init(params), jax.random.key(SEED)]

        def run_block():
            p, o, k = state
            for _ in range(train_steps):
                p, o, k, loss = step(p, o, k)
            state[:] = [p, o, k]
            return p, o, k, loss

        times, out = harness.time_calls(run_block, jax.block_until_ready, reps, warmup)
        times = [s / train_steps for s in times]
        jitted, nfe = step, None
        extra["final_loss"] = float(out[-1])

    elif w.group in ("sample", "small"):

        def sample(params, x_0):
            return flowjax.solvers.ode_sample(
                nnx.merge(graphdef, params), x_0, method=w.method, step_size=w.step_size
            )

        jitted = jax.jit(sample)
        x_0 = jax.device_put(inputs[f"x_{w.name}"])
        times, out = harness.time_calls(
            lambda: jitted(params, x_0), jax.block_until_ready, reps, warmup
        )
        outputs["x_1"] = np.asarray(out)
        nfe = flowjax_nfe(w)

    elif w.group == "likelihood":

        def log_likelihood(params, x_1):
            return flowjax.solvers.ode_log_likelihood(
                nnx.merge(graphdef, params),
                x_1,
                flowjax.solvers.standard_normal_log_density,
                method=w.method,
                step_size=w.step_size,
                time_grid=(1.0, 0.0),
                exact_divergence=True,
            )

        jitted = jax.jit(log_likelihood)
        x_1 = jax.device_put(inputs[f"x_{w.name}"])
        times, out = harness.time_calls(
            lambda: jitted(params, x_1), jax.block_until_ready, reps, warmup
        )
        outputs["x_0"], outputs["log_p1"] = np.asarray(out[0]), np.asarray(out[1])
        nfe = flowjax_nfe(w, (1.0, 0.0))
    else:
        raise ValueError(f"Unknown workload group {w.group!r}; expected one of {GROUPS}.")

    result = workload_result(w, "flowjax", times, nfe, extra)
    # More than one entry in the jit cache would mean a recompilation between repetitions.
    result["compilations"] = jitted._cache_size()
    return result, outputs


# ----------------------------------------------------------------------------------------------
# Peer side: flow_matching on torch (runs in the peer environment, with --peer)
# ----------------------------------------------------------------------------------------------


def torch_mlp(weights: list[tuple[np.ndarray, np.ndarray]]):
    """The 2D example's MLP in torch, called as model(x, t) with t a scalar or of shape (B,)."""
    import torch
    from torch import nn

    class VelocityMLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = harness.torch_swish_mlp(weights)
            self.calls = 0  # network evaluations, to check the solvers' step counts

        def forward(self, x, t):
            self.calls += 1
            t = t.reshape(-1, 1).expand(x.shape[0], 1).to(x.dtype)
            return self.net(torch.cat([x, t], dim=1))

    return VelocityMLP()


def torch_checkerboard(n: int):
    import torch

    col = torch.randint(0, 4, (n,))
    row = 2 * torch.randint(0, 2, (n,)) + col % 2
    offset = torch.rand(n, 2)
    return torch.stack([col, row], dim=1).float() + offset - 2.0


def peer_run_workload(
    w: Workload, inputs: dict[str, np.ndarray], reps: int, train_steps: int, warmup: int = WARMUP
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Times one workload with flow_matching + torch; returns (timings, outputs)."""
    import torch
    from flow_matching.path import AffineProbPath
    from flow_matching.path.scheduler import CondOTScheduler
    from flow_matching.solver import ODESolver

    torch.manual_seed(SEED)
    model = torch_mlp(weights_for(inputs, w.hidden))
    outputs: dict[str, np.ndarray] = {}
    extra: dict[str, Any] = {}
    nfe = None

    if w.group == "train":
        path = AffineProbPath(scheduler=CondOTScheduler())
        optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
        batch = w.n

        def run_block():
            for _ in range(train_steps):
                x_1 = torch_checkerboard(batch)
                x_0 = torch.randn_like(x_1)
                t = torch.rand(batch)
                path_sample = path.sample(t=t, x_0=x_0, x_1=x_1)
                loss = torch.pow(model(path_sample.x_t, path_sample.t) - path_sample.dx_t, 2).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            return loss.item()

        times, loss = harness.time_calls(run_block, lambda out: out, reps, warmup)
        times = [s / train_steps for s in times]
        extra["final_loss"] = loss

    elif w.group in ("sample", "small"):
        solver = ODESolver(velocity_model=model)
        x_0 = torch.from_numpy(inputs[f"x_{w.name}"])
        grid = torch.tensor([0.0, 1.0])

        def sample():
            return solver.sample(x_init=x_0, step_size=w.step_size, method=w.method, time_grid=grid)

        times, out = harness.time_calls(sample, lambda out: out, reps, warmup)
        model.calls = 0
        sample()
        nfe = model.calls
        outputs["x_1"] = out.numpy()

    elif w.group == "likelihood":
        solver = ODESolver(velocity_model=model)
        x_1 = torch.from_numpy(inputs[f"x_{w.name}"])
        grid = torch.tensor([1.0, 0.0])

        def log_p0(x):
            return -0.5 * x.pow(2).sum(dim=1) - 0.5 * x.shape[1] * math.log(2.0 * math.pi)

        def log_likelihood():
            return solver.compute_likelihood(
                x_1=x_1,
                log_p0=log_p0,
                step_size=w.step_size,
                method=w.method,
                time_grid=grid,
                exact_divergence=True,
            )

        times, out = harness.time_calls(log_likelihood, lambda out: out, reps, warmup)
        model.calls = 0
        log_likelihood()
        nfe = model.calls
        outputs["x_0"], outputs["log_p1"] = out[0].detach().numpy(), out[1].detach().numpy()
    else:
        raise ValueError(f"Unknown workload group {w.group!r}; expected one of {GROUPS}.")

    return workload_result(w, "peer", times, nfe, extra), outputs


# ----------------------------------------------------------------------------------------------
# Orchestration: the table and the two sides in turn
# ----------------------------------------------------------------------------------------------


def max_abs_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float | None:
    if not a or not b:
        return None
    return max(float(np.max(np.abs(a[k].astype(np.float64) - b[k]))) for k in a)


def summarise(workloads, flowjax_env, peer_env, flowjax_out, peer_out) -> tuple[float, list[dict]]:
    """One row per workload: times, speed-up, GFLOP/s and fractions of the matmul FLOP/s."""
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
            row[f"{side}_nfe"] = r["nfe"]
            row[f"{side}_gflops"] = r["gflops"]
            row[f"{side}_of_best_matmul"] = harness.mfu(r["gflops"], best)
            row[f"{side}_of_own_matmul"] = harness.mfu(r["gflops"], own[side])
        if peer_env:
            row["speedup"] = row["peer_s"] / row["flowjax_s"]
            row["max_abs_diff"] = max_abs_diff(flowjax_out[w.name], peer_out.get(w.name, {}))
        rows.append(row)
    return best, rows


def format_table(rows: list[dict], flowjax_env, peer_env, best: float) -> str:
    def fmt_time(s):
        return f"{s * 1e3:10.2f}" if s is not None else f"{'-':>10}"

    def fmt_pct(x):
        return f"{100 * x:6.1f}%" if x is not None else f"{'-':>7}"

    header = (
        f"{'workload':<18} {'size':<15} {'NFE':>4} {'flowjax ms':>10} {'peer ms':>10} "
        f"{'speed-up':>8} | {'fjx GF/s':>8} {'%best':>7} {'%own':>7} | "
        f"{'peer GF/s':>9} {'%best':>7} {'%own':>7} | {'max|d|':>8}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        nfe = r.get("flowjax_nfe")
        if r.get("peer_nfe") not in (None, nfe):
            nfe = f"{nfe}/{r['peer_nfe']}"
        diff = r.get("max_abs_diff")
        lines.append(
            f"{r['workload']:<18} {r['size']:<15} {str(nfe if nfe is not None else '-'):>4} "
            f"{fmt_time(r['flowjax_s'])} {fmt_time(r.get('peer_s'))} "
            f"{(format(r['speedup'], '.2f') + 'x') if 'speedup' in r else '-':>8} | "
            f"{r['flowjax_gflops']:8.1f} {fmt_pct(r['flowjax_of_best_matmul'])} "
            f"{fmt_pct(r['flowjax_of_own_matmul'])} | "
            f"{format(r['peer_gflops'], '9.1f') if 'peer_gflops' in r else '-':>9} "
            f"{fmt_pct(r.get('peer_of_best_matmul'))} "
            f"{fmt_pct(r.get('peer_of_own_matmul'))} | "
            f"{format(diff, '8.1e') if diff is not None else '-':>8}"
        )
    matmul = harness.matmul_summary(flowjax_env, peer_env)
    lines += ["", matmul + f" (best {best:.1f}); train times are per step"]
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--quick", action="store_true", help="tiny sizes and 2 reps: a smoke check")
    add("--only", default=None, help=f"comma-separated workload groups among {', '.join(GROUPS)}")
    add("--reps", type=int, default=None, help="timed repetitions (default 7; quick 2)")
    add("--train-steps", type=int, default=None, help="steps per timed repetition (10; quick 2)")
    harness.add_matmul_arguments(parser)
    harness.add_peer_arguments(parser)
    harness.add_results_arguments(parser)
    args = parser.parse_args(argv)
    harness.fill_defaults(
        args, {"reps": (7, 2), "train_steps": (10, 2), **harness.MATMUL_DEFAULTS}
    )
    if args.only:
        args.only = [g.strip() for g in args.only.split(",") if g.strip()]
        unknown = sorted(set(args.only) - set(GROUPS))
        if unknown:
            parser.error(f"unknown workload group(s) {unknown}; choose among {list(GROUPS)}")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.peer:
        harness.peer_workloads_main(
            args.exchange,
            Workload,
            lambda w, inputs, spec: peer_run_workload(w, inputs, spec["reps"], spec["train_steps"]),
        )
        return
    machine = harness.start_on_cpu()
    workloads = build_workloads(args.quick, args.only)
    inputs = make_inputs(workloads)

    peer_env, peer_out = harness.run_peer_workloads(
        args, __file__, workloads, inputs, reps=args.reps, train_steps=args.train_steps
    )
    flowjax_env, flowjax_out = harness.measure_workloads(
        "flowjax",
        workloads,
        lambda w: flowjax_run_workload(w, inputs, args.reps, args.train_steps),
        args.matmul_size,
        args.matmul_reps,
    )
    machine["load_average_at_end"] = harness.load_averages()

    best, rows = summarise(workloads, flowjax_env, peer_env, flowjax_out, peer_out)
    table = format_table(rows, flowjax_env, peer_env, best)
    if args.quick:
        table += "\n--quick: tiny sizes, tiny matmul yardstick: a smoke check, not a measurement"
    report = {
        **harness.report_header("flowjax vs flow_matching (PyTorch), same machine, float32, CPU"),
        "settings": {
            "quick": args.quick,
            "reps": args.reps,
            "warmup": WARMUP,
            "train_steps_per_rep": args.train_steps,
            "matmul_size": args.matmul_size,
            "data_generation": "inside the timed training step on both sides",
            "flop_counting": (
                "matmuls only; F = 2 N sum(in*out); sample NFE*F; train 3F - 6Nh; "
                "exact likelihood (D=2): peer NFE*(1+D)*F, flowjax NFE*F + steps*D*F "
                "(midpoint: XLA drops the unused first-stage divergence)"
            ),
        },
        "machine": machine,
        "best_matmul_gflops": best,
        "rows": rows,
        "flowjax": flowjax_env,
        "peer": peer_env,
    }
    harness.write_results(harness.results_path("vs_flow_matching", args, machine), report, table)


if __name__ == "__main__":
    main()
