"""Time grids for fixed-step sampling: the EDM grid of Karras et al. mapped to flow time.

"Elucidating the Design Space of Diffusion-Based Generative Models" (Karras et al., 2022),
eq. 5: sigma_i = (sigma_max^(1/rho) + i / (N - 1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho
for i = 0, ..., N - 1, followed by sigma_N = 0. The Flow Matching Guide (Lipman et al., 2024)
samples its CIFAR-10 model on this grid (PAPERS.md, section 1), read as flow times through the
conditional-OT path x_t = t x_1 + (1 - t) x_0: its noise-to-signal ratio (1 - t) / t equals
sigma, so t = 1 / (1 + sigma). The grid rises from 1 / (1 + sigma_max) to t = 1, with steps
that shrink toward the data end (for rho > 1).
"""

from __future__ import annotations

import numpy as np


def edm_time_grid(
    num_steps: int, *, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0
) -> tuple[float, ...]:
    """The `num_steps + 1` flow times t_i = 1 / (1 + sigma_i) of the EDM grid, ascending, the last
    one 1.0; static Python floats, for `ode_sample(..., time_grid=...)` (one fixed step per
    interval: `num_steps` steps, 2 * num_steps evaluations with Heun's method).

    Args:
      num_steps: number of intervals N >= 1 (N = 1 gives (1 / (1 + sigma_max), 1)).
      sigma_min, sigma_max: 0 < sigma_min < sigma_max, the smallest and largest noise levels.
      rho: > 0; the grid is uniform in sigma^(1/rho).
    """
    if not isinstance(num_steps, (int, np.integer)) or isinstance(num_steps, bool) or num_steps < 1:
        raise ValueError(f"num_steps must be an int >= 1, got {num_steps!r}.")
    if not (0 < sigma_min < sigma_max and np.isfinite(sigma_max)):
        raise ValueError(
            "Expected finite 0 < sigma_min < sigma_max, got "
            f"sigma_min={sigma_min}, sigma_max={sigma_max}."
        )
    if not (rho > 0 and np.isfinite(rho)):
        raise ValueError(f"rho must be a finite number > 0, got {rho}.")
    if num_steps == 1:
        sigmas = np.array([sigma_max, 0.0])
    else:
        ramp = np.arange(num_steps, dtype=np.float64) / (num_steps - 1)
        lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
        sigmas = np.append((hi + ramp * (lo - hi)) ** rho, 0.0)
    return tuple(float(t) for t in 1.0 / (1.0 + sigmas))
