"""Rectified couplings of a trained masked diffusion model or IMDM (ReDi, IM-ReDi).

Rectified discrete flow (ReDi) and its IMDM form retrain a model on its teacher's own couplings:
the teacher samples with many steps from a start x_start at time t, and the pair (start, sample)
becomes a training example (`loss.distill="redi"`, data source "couplings"). For IMDM each sample
also has a seed from which its labels eps are drawn (`draw_noise(key(seed), (L,))`, kept fixed
through the teacher's steps: `fixed_noise=True`), so the student sees the same eps that led the
teacher to that sample, and one file of integers stores them. Every random draw of the teacher's
sampler for a coupling (which positions are revealed when, and to which token) also comes from
its seed (`fold_in(key(seed), SAMPLER_STREAM)`), so a coupling is reproducible from its seed
and independent of how the couplings are batched. What a one-step student can learn from them is
bounded by how much the teacher's samples depend on eps: by the data-processing inequality a
student fitted to the couplings depends on eps no more than the teacher does (beyond the PRNG,
which no network learns), and an IMDM trained with the ELBO hardly reads eps at all, since eps is
independent of the data in its loss (experiments/imdm). For a masked model, whose input holds no
eps, the couplings carry no such information either. Starts are all-masked sequences
(t = 0), or, with `perturbed=True`, held-out data masked at a uniform time t (the authors'
"perturbed rectification"; the teacher completes the masked positions).

`write_couplings(config, workdir, path, num)` writes them with `flowjax.data.save_couplings`;
`python -m flowjax.main --mode=couplings` calls it for the run in --workdir.
"""

from __future__ import annotations

import logging

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from flowjax import data, solvers
from flowjax.train.inference import heldout_iterator
from flowjax.train.objectives.imdm import InfiniteMaskDiffusion, per_example_noise
from flowjax.train.objectives.masked_diffusion import MaskedDiffusion
from flowjax.train.trained import load_trained_flow, map_batches

log = logging.getLogger(__name__)
SAMPLER_STREAM = 0x52454449  # fold_in tag of a coupling's sampler key (its eps use the seed itself)


def write_couplings(
    config: ml_collections.ConfigDict,
    workdir: str,
    path: str,
    num: int,
    *,
    steps: int = 1024,
    seed: int = 0,
    perturbed: bool = False,
) -> str:
    """Samples `num` couplings from the run in `workdir` with `steps` ancestral steps and
    writes them to `path` (.npz); returns `path`."""
    if not (isinstance(num, int) and num >= 1):
        raise ValueError(f"num must be an int >= 1 couplings, got {num!r}.")
    if not (isinstance(steps, int) and steps >= 1):
        raise ValueError(f"steps must be an int >= 1, got {steps!r}.")
    flow = load_trained_flow(config, workdir)
    objective = flow.run.objective
    if not isinstance(objective, MaskedDiffusion):
        raise ValueError(
            f"Couplings are written by a masked diffusion or IMDM run; {workdir!r} trains "
            f"{config.objective!r}."
        )
    vocab, length = objective.spec.vocab_size, objective.spec.event_shape[0]
    rng = np.random.default_rng(seed)
    x_start = np.full((num, length), vocab, np.int32)
    t = np.zeros(num, np.float32)
    if perturbed:
        rows = []
        held_out = heldout_iterator(config)
        while sum(len(r) for r in rows) < num:
            rows.append(np.asarray(next(held_out)["x"]))
        x_data = np.concatenate(rows)[:num]
        t = rng.random(num).astype(np.float32)
        kappa = np.asarray(objective.path.scheduler(jnp.asarray(t)).alpha_t)
        x_start = np.where(rng.random((num, length)) < kappa[:, None], x_data, vocab)
    noise_seed = rng.integers(0, 2**32, size=num, dtype=np.uint32)
    has_noise = isinstance(objective, InfiniteMaskDiffusion)
    sc = config.sample

    def sample(model, batch, key):
        # One sampler per coupling, all its draws from its own seed: the sample is a function of
        # the seed, so its eps (drawn from the same seed) determines it.
        posterior = objective._posterior(model)

        def one(seed, x_start):
            kwargs = {}
            if has_noise:
                eps = model.draw_noise(jax.random.key(seed), (length,))[None]
                kwargs = dict(draw_noise=model.draw_noise, noise_init=eps, fixed_noise=True)
            return solvers.masked_diffusion_sample(
                jax.random.fold_in(jax.random.key(seed), SAMPLER_STREAM),
                posterior,
                x_start[None],
                objective.path,
                step_size=1.0 / steps,
                dtype=jnp.dtype(sc.categorical_dtype),
                **kwargs,
            )[0]

        return jax.vmap(one)(batch["noise_seed"], batch["x"])

    compiled = flow.compile(sample)
    inputs = {"x": x_start, "noise_seed": noise_seed}
    key = jax.random.key(seed)
    x = map_batches(compiled, inputs, sc.batch_size, flow.run.mesh, key, "couplings")
    if perturbed:  # revealed positions of a start are fixed; its masks were all sampled
        x = np.where(x_start == vocab, x, x_start)
    written = data.save_couplings(path, x, x_start, t, noise_seed, vocab)
    log.info("Wrote %d couplings of %d steps from step %d to %s.", num, steps, flow.step, path)
    return written
