"""The trainer objective "flow_matching": continuous flow matching on affine paths.

Flow Matching Guide and Code (Lipman et al., 2024), section 4: the conditional flow matching
loss (eq. 4.23) on the affine path x_t = alpha_t x_1 + sigma_t x_0 (eq. 4.64) with velocity,
x_1- or x_0-prediction (eqs. 4.65-4.67), samples by solving dx/dt = u_t(x) (eq. 3.5, with
classifier-free guidance for class-conditional models) and the exact-divergence likelihood
log p_1(x_1) = log p_0(x_0) - int_0^1 div u_t(x_t) dt (eq. 3.31); for images, FID and Inception
Score of the samples (`scores_images`).

In an autoencoder's latent space, `loss.lpl_weight` > 0 adds the latent perceptual loss
(Berrada et al., `flowjax.losses.lpl`): the decoder of the diffusers AutoencoderKL at
`loss.lpl_autoencoder` (frozen, in the model's state) reads the one-step data estimate of the
model's output and the true latent (the data are latents scaled by its scaling factor), for the
examples with t >= `loss.lpl_t_min`. With the weight 0 nothing changes. `loss.lpl_fraction` < 1
decodes only that fraction of each batch, the examples of largest t (with logit-normal(0, 1)
times about 8% of them have t >= 0.8, so 1/4 is exact in practice and saves 3/4 of the decoder
passes).

Control metadata (data with `flip_control`, a DiT with `control_dim`; Berrada et al., 2024):
the batch's "control" is dropped to the null control with probability `loss.control_dropout`;
samples take the metadata `sample.control` (empty: none), and `sample.control_guidance_scale`
w_c with `sample.guidance_scale` w give the two-scale guidance u(null, null) + (1 + w)
(u(y, null) - u(null, null)) + (1 + w_c) (u(y, c) - u(y, null)).

Text embeddings (data with `context_path`, a DiT with conditioning="attention" and
`context_dim`; Berrada et al., 2024): each caption's tokens past its length are filled by noisy
replicate padding with standard deviation `loss.context_noise` (noiseless copies at sampling and
evaluation), and the caption is dropped to the null caption (zeros) with probability
`loss.context_dropout`. Samples read the captions of `sample.context_path` (a
`flowjax.data.save_text_embeddings` directory, used in order) or, when it is empty, captions of
the training data drawn at random (independently of the labels of labelled data: set
`sample.label` for one class); `sample.guidance_scale` guides on the caption (and the label, when
there is one) against the null ones.

`path.resolution_shift` s != 1 divides the path's signal-to-noise ratio by s at every time
(`flowjax.paths.ShiftedScheduler`: for images with s times the side of the base resolution).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from flowjax import data, guidance, losses, metrics, solvers
from flowjax.models.autoencoder import FlowWithDecoder
from flowjax.models.convert_autoencoder import load_autoencoder_kl, read_config
from flowjax.train import registry
from flowjax.train.objectives.base import (
    Batch,
    BatchFn,
    DataSpec,
    Objective,
    conditioning,
    drop_context,
    drop_control,
    drop_labels,
    dropout_seeds,
    pad_context,
)


class FlowMatching(Objective):
    """Flow Matching Guide and Code (Lipman et al., 2024), section 4.5, eq. 4.23 with the affine
    path of eq. 4.64: E_{t, x_0 ~ N(0, I), x_1} || u_t^theta(x_t) - dx_t ||^2 (or the x_1- /
    x_0-prediction of eqs. 4.65-4.67), sampled by solving dx/dt = u_t(x) (eq. 3.5) and evaluated
    by the exact-divergence likelihood log p_1(x_1) = log p_0(x_0) - int div u_t dt (eq. 3.31)."""

    name = "flow_matching"
    default_model = "mlp"
    data_kind = "continuous"
    plot_density = True
    scores_images = True
    path_defaults = dict(
        scheduler="cond_ot",  # one of registry.SCHEDULERS
        polynomial_n=1.0,  # exponent of the "polynomial" scheduler
        vp_beta_min=0.1,  # range of the "vp" scheduler
        vp_beta_max=20.0,
        resolution_shift=1.0,  # divide the SNR by this (> 1: images larger than the base)
    )
    loss_defaults = dict(
        prediction="velocity",  # regression target: "velocity", "target" (x_1) or "epsilon" (x_0)
        time_distribution="uniform",  # or "logit_normal": t = sigmoid(N(time_mean, time_std^2))
        time_mean=-1.2,
        time_std=1.2,
        t_max=1.0,  # times are drawn in [0, t_max)
        label_dropout=0.0,  # probability of replacing a class label by the null label (CFG)
        control_dropout=0.0,  # probability of replacing the control metadata by the null control
        context_dropout=0.0,  # probability of replacing the text embeddings by the null caption
        # Standard deviation of the noise on the replicated caption tokens (noisy replicate
        # padding; the paper gives no value: a choice against embeddings of unit scale).
        context_noise=0.1,
        lpl_weight=0.0,  # weight of the latent perceptual loss (0: none)
        lpl_autoencoder="",  # the diffusers AutoencoderKL directory whose decoder LPL reads
        lpl_t_min=0.8,  # LPL only where t >= lpl_t_min (DDPM timestep 200 of 1,000)
        # The decoder reads the ceil(lpl_fraction * B) examples of largest t of each batch
        # (exact while no more than that many have t >= lpl_t_min; 1.0: always exact).
        lpl_fraction=1.0,
    )
    sample_defaults = dict(
        method="midpoint",  # one of flowjax.solvers.METHODS
        step_size=0.05,  # fixed step of a "uniform" grid; the initial step of dopri5 / tsit5
        time_grid="uniform",  # or "edm": solvers.edm_time_grid(edm_steps, rho=edm_rho)
        edm_steps=25,  # intervals of the EDM grid (Heun: 2 evaluations each)
        edm_rho=7.0,
        atol=1e-5,  # tolerances of the adaptive methods
        rtol=1e-5,
        guidance_scale=0.0,  # classifier-free guidance w of a class-conditional model
        label=-1,  # class of every sample of a conditional model; -1: uniformly random classes
        control=(),  # control metadata of every sample (data with control); (): none
        control_guidance_scale=0.0,  # w_c of the two-scale guidance (data with control)
        # Text embeddings of the captions to draw (data with text embeddings): a
        # save_text_embeddings directory read in order; "": the data's captions, at random.
        context_path="",
        density_grid_size=100,  # points per side of the grid of the density plot (2D data)
    )
    evaluate_defaults = dict(
        method="midpoint",
        step_size=0.05,
        # "exact" (D Jacobian-vector products per evaluation) or "hutchinson" (one Rademacher
        # probe: an unbiased estimate of the divergence, for high-dimensional data like images)
        divergence="exact",
        # Images: FID and Inception Score of fid_num_samples samples (drawn with the sampling
        # settings, scored in streamed batches of sample.batch_size) against the reference
        # statistics in this .npz ("mu", "sigma" of real images' pool_3 features); "": no FID.
        fid_reference="",
        fid_num_samples=50_000,
        inception_weights="",  # the converted FID Inception weights; "": the default path
        # Latent data: the diffusers AutoencoderKL directory whose decoder turns samples into
        # images for the sample grid, FID and the digits distance ("": samples are images).
        autoencoder="",
    )
    choices = {
        "path.scheduler": tuple(registry.SCHEDULERS),
        "evaluate.divergence": ("exact", "hutchinson"),
        "loss.prediction": tuple(losses.REGRESSION_TARGETS),
        "loss.time_distribution": losses.TIME_DISTRIBUTIONS,
        "sample.method": solvers.METHODS,
        "sample.time_grid": ("uniform", "edm"),
        "evaluate.method": solvers.METHODS,
    }
    positive = (
        "path.polynomial_n",
        "path.resolution_shift",
        "loss.time_std",
        "loss.t_max",
        "sample.step_size",
        "sample.edm_steps",
        "sample.edm_rho",
        "sample.atol",
        "sample.rtol",
        "sample.density_grid_size",
        "evaluate.step_size",
        "evaluate.fid_num_samples",
    )
    lpl = False  # the latent perceptual loss is on (set from loss.lpl_weight in __init__)
    reads_context = True
    non_negative = (
        "sample.guidance_scale", "sample.control_guidance_scale", "loss.lpl_weight",
        "loss.context_noise",
    )
    unit_interval = (
        "loss.t_max", "loss.label_dropout", "loss.control_dropout", "loss.context_dropout",
        "loss.lpl_t_min", "loss.lpl_fraction",
    )

    def __init__(self, config: ml_collections.ConfigDict, spec: DataSpec):
        super().__init__(config, spec)
        self.path = registry.build_path(config.path)
        self.sample_solver = solvers.SolverSettings.from_config(config.sample)
        self.evaluate_solver = solvers.SolverSettings.from_config(config.evaluate)
        sc = config.sample
        if sc.guidance_scale > 0 and spec.num_classes is None and spec.context_shape is None:
            raise ValueError(
                "sample.guidance_scale > 0 needs a conditional model: class labels or text "
                "embeddings (data.context_path)."
            )
        if spec.context_shape is None and (sc.context_path or config.loss.context_dropout > 0):
            raise ValueError(
                "sample.context_path and loss.context_dropout need data with text embeddings "
                "(data.context_path)."
            )
        if sc.context_path:
            width = data.TextEmbeddings(sc.context_path).token_shape[1]
            if width != spec.context_shape[1]:
                raise ValueError(
                    f"sample.context_path={sc.context_path!r} holds text embeddings of width "
                    f"{width}, but the model was trained on width {spec.context_shape[1]} "
                    "(data.context_path): encode the prompts with the same text encoder."
                )
        if sc.label != -1 and (spec.num_classes is None or not 0 <= sc.label < spec.num_classes):
            classes = "none" if spec.num_classes is None else f"0..{spec.num_classes - 1}"
            raise ValueError(
                f"sample.label={sc.label} is out of range: the data's class labels are "
                f"{classes}; use -1 for uniformly random classes."
            )
        if sc.time_grid == "edm" and sc.method not in solvers.EVALS_PER_STEP:
            raise ValueError(
                f"sample.time_grid='edm' is a grid for a fixed-step method (e.g. 'heun'), got "
                f"sample.method={sc.method!r}."
            )
        control = tuple(sc.control)
        if not spec.control_dim and (control or sc.control_guidance_scale > 0
                                     or config.loss.control_dropout > 0):
            raise ValueError(
                "sample.control, sample.control_guidance_scale and loss.control_dropout need "
                "data with control metadata (data.flip_control=True)."
            )
        if control and len(control) != spec.control_dim:
            raise ValueError(
                f"sample.control={control} must give {spec.control_dim} value(s), one per control "
                "metadata value of the data, or be () for none."
            )
        self.lpl = config.loss.lpl_weight > 0
        if self.lpl:
            if not config.loss.lpl_autoencoder:
                raise ValueError(
                    "loss.lpl_weight > 0 needs the autoencoder whose decoder the latent "
                    "perceptual loss reads: set loss.lpl_autoencoder to a diffusers AutoencoderKL "
                    "directory."
                )
            self.autoencoder_config = self._check_latents(
                config.loss.lpl_autoencoder, spec, "loss.lpl_weight > 0"
            )
        if config.evaluate.autoencoder:
            self._check_latents(config.evaluate.autoencoder, spec, "evaluate.autoencoder")
        if config.evaluate.fid_reference:
            if len(spec.event_shape) != 3:
                raise ValueError(
                    "evaluate.fid_reference is set, but FID scores images (H, W, C); the data "
                    f"have event shape {spec.event_shape}."
                )
            metrics.inception.require_weights(config.evaluate.inception_weights or None)
            metrics.inception.check_reference(config.evaluate.fid_reference)

    @staticmethod
    def _check_latents(path: str, spec: DataSpec, what: str):
        """The config of the autoencoder at `path`; its latents must be the data (clear errors
        naming `what` otherwise)."""
        config = read_config(path)
        latent = spec.event_shape
        if len(latent) != 3 or latent[-1] != config.latent_channels:
            raise ValueError(
                f"{what} reads the data as latents (h, w, {config.latent_channels}) "
                f"of the autoencoder at {path!r}, but the data have event shape {latent}."
            )
        return config

    def model_fn(self, build):
        if not self.lpl:
            return build
        path = self.config.loss.lpl_autoencoder
        return lambda rngs: FlowWithDecoder(build(rngs), load_autoencoder_kl(path))

    def draw_step_noise(self, key: jax.Array, batch: Batch) -> Batch:
        """x_0 ~ N(0, I) of the shape of batch["x"], t (B,), dropped labels, control metadata and
        captions, padded captions and, for a model with dropout, per-example dropout seeds."""
        x_1 = batch["x"]
        noise_key, time_key, drop_key, dropout_key = jax.random.split(key, 4)
        lc = self.config.loss
        out = pad_context(jax.random.fold_in(drop_key, 3), batch, lc.get("context_noise", 0.0))
        out = drop_context(jax.random.fold_in(drop_key, 2), out, lc.get("context_dropout", 0.0))
        out["x_0"] = jax.random.normal(noise_key, x_1.shape, x_1.dtype)
        out["t"] = self._time(time_key, x_1.shape[0], x_1.dtype)
        if self.config.model.get("dropout", 0.0) > 0:
            out["dropout_seed"] = dropout_seeds(dropout_key, x_1.shape[0])
        out = drop_control(
            jax.random.fold_in(drop_key, 1), out, self.config.loss.get("control_dropout", 0.0)
        )
        return drop_labels(drop_key, out, self.config.loss.label_dropout, self.spec.num_classes)

    def loss(self, model: nnx.Module, batch: Batch) -> jax.Array:
        lc = self.config.loss
        if not self.lpl:
            return losses.cfm_loss(
                model, self.path, batch["x_0"], batch["x"], batch["t"],
                prediction=lc.prediction, **conditioning(batch),
            )
        error, output, sample = losses.cfm_regression(
            model.net, self.path, batch["x_0"], batch["x"], batch["t"],
            prediction=lc.prediction, **conditioning(batch),
        )
        scale = self.autoencoder_config.scaling_factor
        x_1_hat = losses.clean_estimate(self.path, lc.prediction, output, sample.x_t, sample.t)
        size = batch["t"].shape[0]
        chosen = slice(None)
        if lc.lpl_fraction < 1.0:  # only the examples nearest the data reach the decoder
            chosen = jax.lax.top_k(batch["t"], max(1, math.ceil(lc.lpl_fraction * size)))[1]
        perceptual = losses.lpl_loss(
            model.autoencoder.decoder_features, x_1_hat[chosen] / scale,
            batch["x"][chosen] / scale, batch["t"][chosen], t_min=lc.lpl_t_min,
        )
        return jnp.mean(error) / batch["x"][0].size + lc.lpl_weight * jnp.sum(perceptual) / size

    def source_batch(self, num: int, seed: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        inputs = {"x": rng.standard_normal((num, *self.spec.event_shape), dtype=np.float32)}
        if self.spec.num_classes is not None:
            inputs["label"] = rng.integers(self.spec.num_classes, size=num).astype(np.int32)
            if self.config.sample.label >= 0:
                inputs["label"] = np.full(num, self.config.sample.label, np.int32)
        if self.spec.control_dim:
            control = tuple(self.config.sample.control) or (np.nan,) * self.spec.control_dim
            inputs["control"] = np.tile(np.asarray(control, np.float32), (num, 1))
        if self.spec.context_shape is not None:
            prompts = self.config.sample.context_path
            captions = data.TextEmbeddings(prompts or self.config.data.context_path)
            rows = (np.arange(num) % len(captions) if prompts
                    else rng.integers(len(captions), size=num))
            inputs.update(captions.read(rows))
        return inputs

    def sampler(self, time_grid: tuple[float, ...] = (0.0, 1.0)) -> BatchFn:
        """With sample.time_grid="edm" the solver steps on the EDM grid, to which the times of a
        longer `time_grid` (trajectories) are added; the states at `time_grid` are returned."""
        solver, guidance_scale = self.sample_solver, self.config.sample.guidance_scale
        control_scale = self.config.sample.control_guidance_scale
        two_scales = self.spec.control_dim and (guidance_scale > 0 or control_scale > 0)
        intermediates = len(time_grid) > 2
        grid = tuple(time_grid)
        if solver.time_grid is not None:  # the EDM grid
            grid = tuple(sorted(set(solver.time_grid) | set(grid))) if intermediates else None
        keep = np.asarray([grid.index(t) for t in time_grid]) if intermediates else None

        def sample(model, batch, key):
            del key  # the ODE is deterministic
            batch = pad_context(None, batch, 0.0)
            velocity = model
            if two_scales:
                velocity = guidance.two_scale_guided_velocity(
                    model, 1.0 + guidance_scale, 1.0 + control_scale,
                    null_label=self.spec.num_classes,
                )
            elif guidance_scale > 0:
                velocity = guidance.guided_velocity(
                    model, guidance_scale, null_label=self.spec.num_classes
                )
            x = solvers.ode_sample(
                velocity,
                batch["x"],
                solver=solver if grid is None else solver.replace(time_grid=grid),
                return_intermediates=intermediates,
                **conditioning(batch),
            )
            return x[keep].swapaxes(0, 1) if intermediates else x

        return sample

    def sample_settings(self) -> dict[str, Any]:
        sc = self.config.sample
        settings = {"method": sc.method, "time_grid": sc.time_grid}
        if sc.time_grid == "edm":
            settings.update(edm_steps=sc.edm_steps, edm_rho=sc.edm_rho)
        else:
            settings["step_size"] = sc.step_size
        if sc.method not in solvers.EVALS_PER_STEP:
            settings.update(atol=sc.atol, rtol=sc.rtol)
        if sc.guidance_scale > 0:
            settings["guidance_scale"] = sc.guidance_scale
        if self.spec.control_dim:
            settings.update(control=list(sc.control), control_guidance_scale=sc.control_guidance_scale)
        if self.spec.context_shape is not None:
            settings["captions"] = sc.context_path or "training data, at random"
        return settings

    def log_likelihood(self) -> BatchFn:
        def log_p(model, batch, key):
            batch = pad_context(None, batch, 0.0)
            _, log_p1 = solvers.ode_log_likelihood(
                model,
                batch["x"],
                solvers.standard_normal_log_density,
                solver=self.evaluate_solver,
                key=key,
                **conditioning(batch),
            )
            return log_p1

        return log_p

    def likelihood_metrics(self, log_p: np.ndarray, points: np.ndarray) -> dict[str, float]:
        result = metrics.negative_log_likelihood(log_p)
        dims = math.prod(self.spec.event_shape)
        result["nll_bits_per_dim"] = result["nll_nats"] / (math.log(2.0) * dims)
        return result
