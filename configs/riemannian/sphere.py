"""Flow Matching on General Geometries (Chen & Lipman, 2024): Riemannian flow matching on the
sphere S^2, trained on a von Mises-Fisher mixture with a known density.

Paper setting (its earth-science datasets on S^2: volcanoes, earthquakes, floods, fires): the
geodesic conditional path x_t = exp_{x_0}(t log_{x_0}(x_1)) along great circles from the uniform
distribution on the sphere, the RCFM loss on tangent vectors, an MLP velocity field whose output
is projected onto the tangent plane; samples and likelihoods by an ODE solver on the sphere.
Here: `flowjax.data`'s sphere_vmf (4 von Mises-Fisher components with concentrations 10 to 25;
`flowjax.data.manifold_toy`), a `manifold_mlp` (4 x 256 Swish on the unit vector), Adam 3e-3 with
warm-up and cosine decay, batch 1024, 8k steps, midpoint sampler and likelihood with step 0.05.

Expected result: samples concentrate on the four caps; the held-out NLL (exact-divergence
Riemannian likelihood, nats w.r.t. area on the unit sphere) is within a few hundredths of a nat
of the true mixture's (`true_nll_nats` in metrics.json; the measured numbers are in
experiments/riemannian/README.md).

Hardware: a CPU is fine: about 4 minutes on 2 CPU cores.

Variants (`--config=configs/riemannian/sphere.py:<variant>`):
  (none)  the run above.
  smoke   a tiny model and a few steps: seconds on a CPU, for tests.
"""

from __future__ import annotations

import pathlib

import ml_collections

from flowjax.train import load_config_file


# configs/riemannian/torus.py, whose model, optimiser and solver settings this one keeps.
TORUS_CONFIG = pathlib.Path(__file__).resolve().parent / "torus.py"


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    if arg not in (None, "smoke"):
        raise ValueError(f"Unknown variant {arg!r} of the sphere config; use 'smoke' or none.")
    config = load_config_file(TORUS_CONFIG, arg)
    config.data = dict(source="toy", name="sphere_vmf")
    config.path.manifold = "S2"
    config.model.num_frequencies = 1  # Fourier features are for torus angles only
    return config
