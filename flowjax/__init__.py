"""flowjax: flow matching and its relatives in JAX/Flax.

Subpackages: `paths` (probability paths and schedulers), `solvers` (ODE samplers and
likelihoods), `losses` (training objectives), `guidance` (classifier-free guidance), `models`
(Flax NNX networks).
"""

from flowjax import guidance, losses, models, paths, solvers

__version__ = "0.1.0"
__all__ = ["guidance", "losses", "models", "paths", "solvers"]
