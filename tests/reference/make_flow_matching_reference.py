"""Builds tests/data/flow_matching_1_0_10.npz: inputs and outputs of the PyTorch reference.

The reference is facebookresearch/flow_matching 1.0.10 (PyPI `flow-matching`), with its ODE
solvers from torchdiffeq. This script only *calls* it; `tests/test_conformance_flow_matching.py`
reads the file and checks flowjax against it without needing PyTorch.

Run it from the repository root, in an environment with torch and flow-matching installed:

    pip install torch==2.13.0 flow-matching==1.0.10
    python tests/reference/make_flow_matching_reference.py

What it stores (every input is drawn from NumPy with a fixed seed; float64 wherever the reference
allows, float32 for the float32 MLP runs):

- sched/<name>/...: alpha, sigma, d_alpha, d_sigma on a t grid, snr_inverse on an snr grid, and
  kappa_inverse on a kappa grid for the convex schedulers.
- path/<name>/...: AffineProbPath.sample (x_t, dx_t) for x_0, x_1 of shape (B, 3, 4), and the six
  parameterisation conversions applied to a random "prediction" of the same shape.
- mlp/...: the weights of a 2D-example network (cat[x, t] -> Linear(3, 64) + Swish, three
  Linear(64, 64) + Swish, Linear(64, 2)) with PyTorch's default initialisation, and its output
  on a few (x, t).
- ode/...: ODESolver.sample with the fixed-step methods at two step sizes, intermediates,
  reversed time, an explicit time grid without step_size, dopri5; the times at which the
  reference evaluated the field for some of them.
- lik/...: ODESolver.compute_likelihood with the exact divergence (midpoint, dopri5) and with
  Hutchinson's estimator together with the Rademacher probe it drew.
- st/...: ScheduleTransformedModel (CondOT -> Cosine, VP -> CondOT) evaluated on the MLP, and a
  midpoint sample through CondOT -> Cosine.
"""

from __future__ import annotations

import math
import os

import flow_matching
import numpy as np
import torch
from flow_matching.path import AffineProbPath
from flow_matching.path.scheduler import (
    CondOTScheduler,
    CosineScheduler,
    LinearVPScheduler,
    PolynomialConvexScheduler,
    ScheduleTransformedModel,
    VPScheduler,
)
from flow_matching.solver import ODESolver
from torch import nn

assert flow_matching.__version__ == "1.0.10", flow_matching.__version__

OUT = os.path.join(os.path.dirname(__file__), os.pardir, "data", "flow_matching_1_0_10.npz")
HIDDEN = 64
BATCH = 8
F32_STEP_SIZES = (0.05, 0.03)
FIXED_METHODS = ("euler", "midpoint", "rk4", "heun2")

rng = np.random.default_rng(20240)
data: dict[str, np.ndarray] = {}


def put(key: str, value) -> None:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    data[key] = np.asarray(value)


def t64(a) -> torch.Tensor:
    return torch.tensor(np.asarray(a), dtype=torch.float64)


def t32(a) -> torch.Tensor:
    return torch.tensor(np.asarray(a), dtype=torch.float32)


# ------------------------------------------------------------------------------------------------
# schedulers

SCHEDULERS = {
    "condot": CondOTScheduler(),
    "poly2": PolynomialConvexScheduler(n=2),
    "poly3": PolynomialConvexScheduler(n=3),
    "vp": VPScheduler(),
    "linear_vp": LinearVPScheduler(),
    "cosine": CosineScheduler(),
}
CONVEX = ("condot", "poly2", "poly3")
# VP and LinearVP have sigma_1 = 0 and d_sigma singular at t = 1.
SINGULAR_AT_ONE = ("vp", "linear_vp")

t_regular = np.concatenate([np.linspace(0.0, 1.0, 21), [0.001, 0.37, 0.999]])
t_open = np.concatenate([np.linspace(0.0, 0.95, 20), [0.001, 0.37, 0.99, 0.999]])
snr_grid = np.geomspace(1e-2, 1e3, 16)
kappa_grid = np.linspace(0.0, 1.0, 11)
put("sched/snr", snr_grid)
put("sched/kappa", kappa_grid)

for name, scheduler in SCHEDULERS.items():
    t = t_open if name in SINGULAR_AT_ONE else t_regular
    out = scheduler(t64(t))
    put(f"sched/{name}/t", t)
    put(f"sched/{name}/alpha", out.alpha_t)
    put(f"sched/{name}/sigma", out.sigma_t)
    put(f"sched/{name}/d_alpha", out.d_alpha_t)
    put(f"sched/{name}/d_sigma", out.d_sigma_t)
    put(f"sched/{name}/snr_inverse", scheduler.snr_inverse(t64(snr_grid)))
    if name in CONVEX:
        put(f"sched/{name}/kappa_inverse", scheduler.kappa_inverse(t64(kappa_grid)))

# ------------------------------------------------------------------------------------------------
# affine paths and conversions, event shape (3, 4)

PATH_BATCH = 5
x_0 = rng.standard_normal((PATH_BATCH, 3, 4))
x_1 = 2.0 * rng.standard_normal((PATH_BATCH, 3, 4)) + 0.5
t_sample = np.array([0.0, 0.13, 0.5, 0.77, 0.96])
x_t_in = rng.standard_normal((PATH_BATCH, 3, 4))
pred_in = rng.standard_normal((PATH_BATCH, 3, 4))
t_conv = np.array([0.1, 0.25, 0.5, 0.7, 0.9])
put("path/x_0", x_0)
put("path/x_1", x_1)
put("path/t_sample", t_sample)
put("path/x_t_in", x_t_in)
put("path/pred_in", pred_in)
put("path/t_conv", t_conv)

CONVERSIONS = {
    "target_to_velocity": "x_1",
    "epsilon_to_velocity": "epsilon",
    "velocity_to_target": "velocity",
    "epsilon_to_target": "epsilon",
    "velocity_to_epsilon": "velocity",
    "target_to_epsilon": "x_1",
}

for name, scheduler in SCHEDULERS.items():
    path = AffineProbPath(scheduler)
    t_s = t_sample.copy()
    if name in SINGULAR_AT_ONE:
        t_s[-1] = 0.9  # keeps d_sigma finite for the VP schedulers
    sample = path.sample(x_0=t64(x_0), x_1=t64(x_1), t=t64(t_s))
    put(f"path/{name}/t_sample", t_s)
    put(f"path/{name}/x_t", sample.x_t)
    put(f"path/{name}/dx_t", sample.dx_t)
    # The reference's conversions broadcast t against x_t, so t is given as (B, 1, 1).
    t_b = t64(t_conv).reshape(-1, 1, 1)
    for conversion, argname in CONVERSIONS.items():
        fn = getattr(path, conversion)
        out = fn(**{argname: t64(pred_in), "x_t": t64(x_t_in), "t": t_b})
        put(f"path/{name}/{conversion}", out)

# ------------------------------------------------------------------------------------------------
# the MLP of the reference's 2D example


class Swish(nn.Module):
    def forward(self, x):
        return torch.sigmoid(x) * x


class Net(nn.Module):
    """u(x, t) = MLP(cat[x, t]) for x of shape (B, 2) and t a scalar or (B,)."""

    def __init__(self, hidden: int):
        super().__init__()
        self.main = nn.Sequential(
            nn.Linear(3, hidden),
            Swish(),
            nn.Linear(hidden, hidden),
            Swish(),
            nn.Linear(hidden, hidden),
            Swish(),
            nn.Linear(hidden, hidden),
            Swish(),
            nn.Linear(hidden, 2),
        )

    def forward(self, x, t):
        t = torch.as_tensor(t).to(x.dtype).reshape(-1, 1).expand(x.shape[0], 1)
        return self.main(torch.cat([x, t], dim=1))


torch.manual_seed(0)
net32 = Net(HIDDEN)
net64 = Net(HIDDEN).double()
net64.load_state_dict({k: v.double() for k, v in net32.state_dict().items()})
linears = [m for m in net32.main if isinstance(m, nn.Linear)]
for i, layer in enumerate(linears):
    put(f"mlp/{i}/weight", layer.weight)  # (out, in), float32
    put(f"mlp/{i}/bias", layer.bias)

mlp_x = rng.standard_normal((BATCH, 2)).astype(np.float32)
mlp_t = rng.uniform(0.0, 1.0, BATCH).astype(np.float32)
put("mlp/x", mlp_x)
put("mlp/t", mlp_t)
with torch.no_grad():
    put("mlp/out", net32(t32(mlp_x), t32(mlp_t)))


class Recorder:
    """Wraps a velocity field and records the times at which it is evaluated."""

    def __init__(self, net):
        self.net = net
        self.times: list[float] = []

    def __call__(self, x, t):
        self.times.append(float(t))
        return self.net(x, t)


x_init32 = rng.standard_normal((BATCH, 2)).astype(np.float32)
x_init64 = x_init32.astype(np.float64)
put("ode/x_init", x_init32)

with torch.no_grad():
    grid01_32 = t32([0.0, 1.0])
    for method in FIXED_METHODS:
        for step in F32_STEP_SIZES:
            rec = Recorder(net32)
            out = ODESolver(rec).sample(
                x_init=t32(x_init32), step_size=step, method=method, time_grid=grid01_32
            )
            put(f"ode/{method}/{step}", out)
            if method == "euler":
                put(f"ode/euler/{step}/eval_times", rec.times)

    # torchdiffeq's "rk4" is the 3/8 rule; in float64 its difference from the classic RK4
    # (O(h^4)) is above rounding, so both step sizes are also stored in float64.
    for step in F32_STEP_SIZES:
        out = ODESolver(net64).sample(
            x_init=t64(x_init64), step_size=step, method="rk4", time_grid=t64([0.0, 1.0])
        )
        put(f"ode/rk4_f64/{step}", out)

    # Intermediates on a grid whose points lie on the step lattice: no interpolation happens.
    grid_mid = [0.0, 0.5, 1.0]
    put("ode/intermediates/grid", grid_mid)
    for method in ("euler", "midpoint"):
        out = ODESolver(net32).sample(
            x_init=t32(x_init32),
            step_size=0.05,
            method=method,
            time_grid=t32(grid_mid),
            return_intermediates=True,
        )
        put(f"ode/intermediates/{method}", out)

    # Intermediates off the lattice: the reference interpolates linearly between its steps.
    grid_off = [0.0, 0.33, 0.71, 1.0]
    put("ode/off_lattice/grid", grid_off)
    out = ODESolver(net32).sample(
        x_init=t32(x_init32),
        step_size=0.05,
        method="midpoint",
        time_grid=t32(grid_off),
        return_intermediates=True,
    )
    put("ode/off_lattice/midpoint", out)

    # An explicit grid and no step size: one step per interval.
    grid_explicit = [0.0, 0.1, 0.35, 0.6, 0.85, 1.0]
    put("ode/explicit/grid", grid_explicit)
    for method in ("euler", "heun2"):
        out = ODESolver(net32).sample(
            x_init=t32(x_init32),
            step_size=None,
            method=method,
            time_grid=t32(grid_explicit),
            return_intermediates=True,
        )
        put(f"ode/explicit/{method}", out)

    # Reversed time, 1 -> 0.
    for method, step in (("euler", 0.03), ("midpoint", 0.05)):
        rec = Recorder(net32)
        out = ODESolver(rec).sample(
            x_init=t32(x_init32), step_size=step, method=method, time_grid=t32([1.0, 0.0])
        )
        put(f"ode/reverse/{method}/{step}", out)
        put(f"ode/reverse/{method}/{step}/eval_times", rec.times)

    # Adaptive dopri5 in float64 (tolerances below float32 resolution).
    out = ODESolver(net64).sample(
        x_init=t64(x_init64),
        step_size=None,
        method="dopri5",
        atol=1e-7,
        rtol=1e-7,
        time_grid=t64([0.0, 0.5, 1.0]),
        return_intermediates=True,
    )
    put("ode/dopri5_f64", out)

# ------------------------------------------------------------------------------------------------
# likelihoods


def log_p0(x):
    """Standard normal log-density per sample for x of shape (B, D)."""
    d = x.shape[1]
    return -0.5 * (x**2).sum(dim=1) - 0.5 * d * math.log(2.0 * math.pi)


x_data32 = (1.5 * rng.standard_normal((BATCH, 2)) + np.array([0.5, -0.3])).astype(np.float32)
put("lik/x_1", x_data32)

x_src, log_p = ODESolver(net32).compute_likelihood(
    x_1=t32(x_data32),
    log_p0=log_p0,
    step_size=0.05,
    method="midpoint",
    exact_divergence=True,
)
put("lik/exact_midpoint/x_0", x_src)
put("lik/exact_midpoint/log_p1", log_p)

x_src, log_p = ODESolver(net64).compute_likelihood(
    x_1=t64(x_data32.astype(np.float64)),
    log_p0=log_p0,
    step_size=None,
    method="dopri5",
    atol=1e-7,
    rtol=1e-7,
    time_grid=t64([1.0, 0.0]),
    exact_divergence=True,
)
put("lik/exact_dopri5_f64/x_0", x_src)
put("lik/exact_dopri5_f64/log_p1", log_p)

# Hutchinson: the reference draws its probe as (randn_like(x_1) < 0) * 2 - 1 with torch's global
# RNG, before anything else uses it; re-seeding and drawing again gives the same probe.
HUTCHINSON_SEED = 1234
torch.manual_seed(HUTCHINSON_SEED)
x_src, log_p = ODESolver(net32).compute_likelihood(
    x_1=t32(x_data32),
    log_p0=log_p0,
    step_size=0.05,
    method="midpoint",
    exact_divergence=False,
)
torch.manual_seed(HUTCHINSON_SEED)
probe = (torch.randn_like(t32(x_data32)) < 0) * 2.0 - 1.0
# The solve is deterministic given the seed (nothing else draws from the RNG) ...
torch.manual_seed(HUTCHINSON_SEED)
x_src_again, log_p_again = ODESolver(net32).compute_likelihood(
    x_1=t32(x_data32), log_p0=log_p0, step_size=0.05, method="midpoint", exact_divergence=False
)
assert torch.equal(log_p, log_p_again)
put("lik/hutchinson_midpoint/probe", probe)
put("lik/hutchinson_midpoint/x_0", x_src)
put("lik/hutchinson_midpoint/log_p1", log_p)


def hutchinson_by_hand(net, x1, z, step):
    """Midpoint solve of [x, l] from 1 to 0 with dl/dt = z . (J z), on the reference's grid."""
    n = int(round(1.0 / step))
    x, l = x1.clone(), torch.zeros(x1.shape[0])
    for k in range(n):
        t0 = 1.0 - k * step
        h = -step

        def field(xx, tt):
            xx = xx.detach().requires_grad_(True)
            u = net(xx, torch.tensor(tt, dtype=torch.float32))
            (g,) = torch.autograd.grad((u * z).sum(), xx)
            return u.detach(), (g * z).sum(dim=1)

        u0, d0 = field(x, t0)
        u1, d1 = field(x + 0.5 * h * u0, t0 + 0.5 * h)
        x, l = x + h * u1, l + h * d1
    return x, log_p0(x) + l


# ... and a solve by hand with the re-drawn probe reproduces its estimate: it is the probe used.
_, log_p_hand = hutchinson_by_hand(net32, t32(x_data32), probe, 0.05)
assert torch.allclose(log_p_hand, log_p, rtol=1e-4, atol=1e-4), (log_p_hand, log_p)

# ------------------------------------------------------------------------------------------------
# schedule change on the float64 MLP

st_r = np.array([0.05, 0.2, 0.35, 0.5, 0.65, 0.8, 0.95])
put("st/r", st_r)
put("st/x", x_init64)
with torch.no_grad():
    for key, (orig, new) in {
        "condot_to_cosine": (CondOTScheduler(), CosineScheduler()),
        "vp_to_condot": (VPScheduler(), CondOTScheduler()),
    }.items():
        model = ScheduleTransformedModel(
            velocity_model=lambda x, t: net64(x, t), original_scheduler=orig, new_scheduler=new
        )
        # The reference's transform divides x by a scale of the shape of t: t must be a scalar.
        velocities = [model(x=t64(x_init64), t=t64(r)) for r in st_r]
        put(f"st/{key}/velocity", torch.stack(velocities))

    model = ScheduleTransformedModel(
        velocity_model=lambda x, t: net64(x, t),
        original_scheduler=CondOTScheduler(),
        new_scheduler=CosineScheduler(),
    )
    out = ODESolver(model).sample(
        x_init=t64(x_init64), step_size=0.05, method="midpoint", time_grid=t64([0.0, 1.0])
    )
    put("st/condot_to_cosine/midpoint_sample", out)

# ------------------------------------------------------------------------------------------------

os.makedirs(os.path.dirname(OUT), exist_ok=True)
np.savez_compressed(OUT, **data)
print(f"wrote {os.path.normpath(OUT)}: {len(data)} arrays, {os.path.getsize(OUT)} bytes")
