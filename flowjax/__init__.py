"""flowjax: flow matching and its relatives in JAX/Flax.

Subpackages: `paths` (probability paths and schedulers), `solvers` (ODE samplers and
likelihoods), `losses` (training objectives), `guidance` (classifier-free guidance), `models`
(Flax NNX networks), `manifolds` (Riemannian manifolds for Riemannian flow matching).
"""

from flowjax import guidance, losses, manifolds, models, paths, solvers

__version__ = "0.1.0"
__all__ = ["guidance", "losses", "manifolds", "models", "paths", "solvers"]
