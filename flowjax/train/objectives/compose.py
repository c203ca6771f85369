"""The trainer objective "compose": object-centric learning with a composition objective.

Jung et al., 2024, "Learning to Compose: Improving Object Centric Learning by Injecting
Compositionality" (ICLR), section 3, on the networks of `flowjax.models.slots.SlotComposer`
(slot attention over a CNN encoder, a one-shot slot decoder and a slot-conditioned diffusion
prior). With slots s = SlotAttention(Enc(x), noise) and the decoder's reconstruction D(s):

  auto-encoding path (trained jointly; the prior is not pretrained)
      L_oneshot   = mean (D(s) - x0)^2
      L_diffusion = mean (eps_phi(x_k, k, s) - eps)^2,
                    x_k = sqrt(abar_k) x0 + sqrt(1 - abar_k) eps,  k ~ U{0..999},  eps ~ N(0, I)
  composition path (`loss.composition=True`)
      the batch is split in halves whose initial slots share their noise (example i and
      example i + B/2 start from the same slots); for every example, slot index j is taken
      from the example itself or from its partner by a fair coin c_j (`mix_slots`), and the mix
      is decoded by the one-shot decoder with its parameters frozen (stop-gradient through
      them: this path trains the encoder and slot attention only), x_c = D_sg(mix). Then
      L_composition = w(k) mean (x_c - sg(x0_hat))^2   (eq. 5, the SDS form),
                    x0_hat = (x_k - sqrt(1 - abar_k) eps_phi(x_k, k, mix)) / sqrt(abar_k),
                    x_k = sqrt(abar_k) x_c + sqrt(1 - abar_k) eps,  k ~ U{20..499},
                    w(k) = 1/2 sqrt(abar_k (1 - abar_k)),
      so that d L / d x_c = w(k) 2 (x_c - x0_hat) / P for P values per example (the SDS
      gradient w(k) (eps_phi - eps) sqrt(1 - abar_k) / sqrt(abar_k) up to that factor), and
      L_mask = 1/2 mean(m_c ||sg(x_c) - x||^2_C) + 1/2 mean(m'_c ||sg(x_c) - x'||^2_C), the
      mask regulariser: m_c = sum_j c_j A_j, the slot-attention masks of the slots taken from
      the example, m'_c = sum_j (1 - c_j) A'_j those of the slots taken from the partner x',
      and ||.||^2_C the mean over channels; only the masks get its gradient.
  total = oneshot_weight L_oneshot + diffusion_weight L_diffusion
          + composition_weight L_composition + mask_weight L_mask     (weights 1, 1, 1, 0.5)

Checked against the authors' code (whieya/Learning-to-compose, models/slot_attention/model.py):
the weight w, the range of k (min_step = 0.02 x 1,000 = 20, max_step 500), the linear beta
schedule from 0.00085 to 0.012 over 1,000 steps (diffusers' "linear"), the frozen decoder and
the stop-gradient on x0_hat, the mask regulariser on the decoded composite (detached), and
every example of the batch mixed with its partner. Differences: one k per example here (their
code draws one per batch); the partner's masks A' in m'_c (their code computes them but weights
the second term with the example's own masks A, which mark regions of the other image); the
coin, the noises and the steps are drawn once per update for the global batch, so that
micro-batches of gradient accumulation pair the same examples (rows j::m of a batch of B hold
the pairs (i, i + B/2) at offsets half a micro-batch apart when B is a multiple of 2 m).

Latent space (the paper's): with `loss.autoencoder` (a diffusers AutoencoderKL directory, e.g.
SD's VAE converted by `flowjax.models.convert_autoencoder`), the frozen autoencoder's scaled
latent means are x0 for the decoder and the prior, while the encoder reads the pixels (their
`slot_encode_RGB`), and the mask regulariser compares the decoded composite with the pixels.

Sampling (`--mode=sample`) decodes and segments held-out scenes: per scene, the
reconstruction (pixels) with the decoder's K slot masks and the slot-attention masks as
channels, (B, H, W, C + 2K); a longer time grid gives (scene, reconstruction) pairs. Evaluation
(`--mode=evaluate`) reports the one-shot and diffusion losses of held-out scenes (its
`log_likelihood` returns these per-scene columns, not a log-likelihood) and, against their
ground-truth masks, FG-ARI and Hungarian-matched mIoU (`flowjax.metrics.segmentation`) of the
slot-attention masks (the paper's segmentation) and of the decoder's masks (`*_decoder`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from flowjax import data, metrics
from flowjax.models.autoencoder import FlowWithDecoder
from flowjax.models.convert_autoencoder import load_autoencoder_kl, read_config
from flowjax.models.slots import DDPM_STEPS, SlotComposer
from flowjax.train import registry
from flowjax.train.objectives.base import Batch, BatchFn, DataSpec, Objective

BETA_SCHEDULES = ("linear", "cosine")
SCORE_COLUMNS = ("oneshot_mse", "diffusion_mse")
"""The per-scene columns of the objective's `log_likelihood`."""
_COSINE_OFFSET = 0.008  # s of the cosine schedule (Nichol & Dhariwal, 2021, eq. 17)


# --------------------------------------------------------------------------------------------
# DDPM (Ho et al., 2020) with 1,000 steps.


def ddpm_alpha_bar(schedule: str = "linear", beta_start: float = 0.00085,
                   beta_end: float = 0.012, num_steps: int = DDPM_STEPS) -> np.ndarray:
    """abar_k = prod_{i <= k} (1 - beta_i), float64 (num_steps,): betas linear from beta_start
    to beta_end, or the cosine schedule (Nichol & Dhariwal, 2021, eq. 17; betas capped at
    0.999)."""
    if schedule == "linear":
        betas = np.linspace(beta_start, beta_end, num_steps, dtype=np.float64)
    elif schedule == "cosine":
        steps = np.arange(num_steps + 1, dtype=np.float64)
        f = np.cos((steps / num_steps + _COSINE_OFFSET) / (1 + _COSINE_OFFSET) * np.pi / 2) ** 2
        betas = np.minimum(1.0 - f[1:] / f[:-1], 0.999)
    else:
        raise ValueError(f"path.beta_schedule must be one of {BETA_SCHEDULES}, got {schedule!r}.")
    return np.cumprod(1.0 - betas)


def _per_example(a: jax.Array, like: jax.Array) -> jax.Array:
    return a.reshape(a.shape + (1,) * (like.ndim - a.ndim)).astype(like.dtype)


def ddpm_noise(x0: jax.Array, eps: jax.Array, alpha_bar: jax.Array) -> jax.Array:
    """x_k = sqrt(abar) x0 + sqrt(1 - abar) eps; x0, eps (B, ...), alpha_bar (B,)."""
    a = _per_example(alpha_bar, x0)
    return jnp.sqrt(a) * x0 + jnp.sqrt(1.0 - a) * eps


def denoised_estimate(x_k: jax.Array, eps_hat: jax.Array, alpha_bar: jax.Array) -> jax.Array:
    """x0_hat = (x_k - sqrt(1 - abar) eps_hat) / sqrt(abar), (B, ...)."""
    a = _per_example(alpha_bar, x_k)
    return (x_k - jnp.sqrt(1.0 - a) * eps_hat) / jnp.sqrt(a)


def sds_weight(alpha_bar: jax.Array) -> jax.Array:
    """w = 1/2 sqrt(abar (1 - abar)) (the authors' "sigma^2" weighting), (B,)."""
    return 0.5 * jnp.sqrt(alpha_bar * (1.0 - alpha_bar))


def composition_loss(composite: jax.Array, x0_hat: jax.Array, weight: jax.Array) -> jax.Array:
    """mean over the batch of w_i mean((composite_i - sg(x0_hat_i))^2): composite, x0_hat
    (B, ...), weight (B,). Its gradient w.r.t. composite_i is w_i 2 (composite_i - x0_hat_i)
    / (B P) for P values per example."""
    error = jnp.square(composite - jax.lax.stop_gradient(x0_hat))
    return jnp.mean(weight * jnp.mean(error.reshape(error.shape[0], -1), axis=1))


# --------------------------------------------------------------------------------------------
# Pairs, shared initial slots and mixing.


def partner(a: jax.Array) -> jax.Array:
    """Example i's partner i + B/2 (mod B) in the other half: (B, ...) -> (B, ...)."""
    half = a.shape[0] // 2
    return jnp.concatenate([a[half:], a[:half]], axis=0)


def shared_slot_noise(key: jax.Array, batch_size: int, num_slots: int, slot_size: int,
                      shared: bool = True) -> jax.Array:
    """N(0, I) initial-slot noise (B, K, S); with `shared`, examples i and i + B/2 get the same
    (B even)."""
    if not shared:
        return jax.random.normal(key, (batch_size, num_slots, slot_size))
    if batch_size % 2:
        raise ValueError(f"Shared slot initialisation pairs the two halves of the batch; the "
                         f"batch size must be even, got {batch_size}.")
    half = jax.random.normal(key, (batch_size // 2, num_slots, slot_size))
    return jnp.concatenate([half, half], axis=0)


def mix_slots(slots: jax.Array, coin: jax.Array) -> jax.Array:
    """Slot j of example i from example i where coin[i, j], else from its partner: slots
    (B, K, S), coin (B, K) bool -> (B, K, S)."""
    return jnp.where(coin[..., None], slots, partner(slots))


def mask_regulariser(composite: jax.Array, x: jax.Array, masks: jax.Array,
                     coin: jax.Array) -> jax.Array:
    """L_mask of the module docstring: composite and images x (B, H, W, C) (the composite is
    detached), slot-attention masks (B, K, H, W), coin (B, K) bool -> scalar."""
    composite = jax.lax.stop_gradient(composite)
    own = jnp.einsum("bkhw,bk->bhw", masks, coin.astype(masks.dtype))
    other = jnp.einsum("bkhw,bk->bhw", partner(masks), 1.0 - coin.astype(masks.dtype))
    error_own = jnp.mean(jnp.square(composite - x), axis=-1)
    error_other = jnp.mean(jnp.square(composite - partner(x)), axis=-1)
    return 0.5 * jnp.mean(error_own * own) + 0.5 * jnp.mean(error_other * other)


def frozen(module: nnx.Module) -> nnx.Module:
    """A view of `module` whose parameters pass no gradient (stop-gradient on each)."""
    graphdef, params, rest = nnx.split(module, nnx.Param, ...)
    return nnx.merge(graphdef, jax.lax.stop_gradient(params), rest)


def segment_scores(true_masks: np.ndarray, pred_masks: np.ndarray) -> dict[str, float]:
    """Mean FG-ARI, ARI and mIoU (Hungarian, objects only) of soft masks (N, K, H, W) against
    integer masks (N, H, W) (0 = background)."""
    n, k = pred_masks.shape[:2]
    true_ids = np.asarray(true_masks, np.int32).reshape(n, -1)
    pred_ids = np.argmax(pred_masks.reshape(n, k, -1), axis=1).astype(np.int32)
    num_true = max(int(true_ids.max()) + 1, 2)
    fg_ari = metrics.fg_adjusted_rand_index(true_ids, pred_ids, num_true=num_true, num_pred=k)
    ari = metrics.adjusted_rand_index(true_ids, pred_ids, num_true=num_true, num_pred=k)
    miou = metrics.mean_iou(true_ids, pred_ids, num_true, k)
    return {"fg_ari": float(np.mean(fg_ari)), "ari": float(np.mean(ari)),
            "miou": float(np.nanmean(miou))}


class ComposeObjective(Objective):
    """See the module docstring."""

    name = "compose"
    default_model = "slot_composer"
    data_kind = "continuous"
    path_defaults = dict(
        beta_schedule="linear",  # DDPM betas over 1,000 steps ("linear" or "cosine")
        beta_start=0.00085,
        beta_end=0.012,
    )
    loss_defaults = dict(
        composition=True,  # False: the plain auto-encoding baseline (no composition path)
        composition_weight=1.0,
        oneshot_weight=1.0,
        diffusion_weight=1.0,
        mask_weight=0.5,
        sds_min_step=20,  # composition steps k ~ U{sds_min_step .. sds_max_step - 1}
        sds_max_step=500,
        # A diffusers AutoencoderKL directory: decode and denoise its latents ("": pixels).
        autoencoder="",
    )
    sample_defaults: dict[str, Any] = {}
    evaluate_defaults: dict[str, Any] = {}
    choices = {"path.beta_schedule": BETA_SCHEDULES}
    positive = ("path.beta_start", "path.beta_end")
    non_negative = ("loss.composition_weight", "loss.oneshot_weight", "loss.diffusion_weight",
                    "loss.mask_weight", "loss.sds_min_step")
    compares_samples = True

    def __init__(self, config: ml_collections.ConfigDict, spec: DataSpec):
        super().__init__(config, spec)
        if registry.MODELS[config.model.name].cls is not SlotComposer:
            raise ValueError(f"The objective {self.name!r} trains a SlotComposer "
                             f"(model.name='slot_composer'), got model.name="
                             f"{config.model.name!r}.")
        if len(spec.event_shape) != 3 or config.data.source != "scenes":
            raise ValueError(
                f"The objective {self.name!r} reads images (H, W, C) with instance masks: use "
                f"data.source='scenes' (got source={config.data.source!r}, examples of shape "
                f"{spec.event_shape})."
            )
        lc = config.loss
        if not 0 <= lc.sds_min_step < lc.sds_max_step <= DDPM_STEPS:
            raise ValueError(
                f"loss.sds_min_step and loss.sds_max_step must satisfy 0 <= min < max <= "
                f"{DDPM_STEPS}, got {lc.sds_min_step} and {lc.sds_max_step}."
            )
        if config.path.beta_start >= config.path.beta_end or config.path.beta_end >= 1:
            raise ValueError(f"The DDPM betas need 0 < path.beta_start < path.beta_end < 1, got "
                             f"{config.path.beta_start} and {config.path.beta_end}.")
        pairs = 2 * config.train.grad_accum_steps
        if lc.composition and config.train.global_batch_size % pairs:
            raise ValueError(
                f"The composition path pairs the two halves of every micro-batch: "
                f"train.global_batch_size={config.train.global_batch_size} must be divisible by "
                f"2 x train.grad_accum_steps = {pairs}."
            )
        self.alpha_bar = ddpm_alpha_bar(config.path.beta_schedule, config.path.beta_start,
                                        config.path.beta_end)
        self.target_shape = tuple(spec.event_shape)
        if lc.autoencoder:
            autoencoder = read_config(lc.autoencoder)
            height, width, channels = spec.event_shape
            f = autoencoder.downsampling
            if height % f or width % f or channels != autoencoder.in_channels:
                raise ValueError(
                    f"loss.autoencoder={lc.autoencoder!r} encodes images with "
                    f"{autoencoder.in_channels} channels and sides divisible by {f}; the data "
                    f"have images of shape {spec.event_shape}."
                )
            self.target_shape = (height // f, width // f, autoencoder.latent_channels)

    # Model -----------------------------------------------------------------------------------

    def model_kwargs(self) -> dict[str, Any]:
        return {"latent_shape": self.target_shape} if self.config.loss.autoencoder else {}

    def model_fn(self, build):
        if not self.config.loss.autoencoder:
            return build
        path = self.config.loss.autoencoder
        return lambda rngs: FlowWithDecoder(build(rngs), load_autoencoder_kl(path))

    @staticmethod
    def _parts(model: nnx.Module):
        """(the SlotComposer, the frozen autoencoder or None)."""
        if isinstance(model, FlowWithDecoder):
            return model.net, model.autoencoder
        return model, None

    @staticmethod
    def _target(autoencoder, x: jax.Array) -> jax.Array:
        """x0 of the decoder and the prior: the images, or their scaled latent means."""
        return x if autoencoder is None else jax.lax.stop_gradient(autoencoder.latents(x))

    @staticmethod
    def _pixels(autoencoder, y: jax.Array) -> jax.Array:
        return y if autoencoder is None else autoencoder.images(y)

    # Training --------------------------------------------------------------------------------

    def draw_step_noise(self, key: jax.Array, batch: Batch) -> Batch:
        """Initial-slot noise (shared by the halves with the composition path), the coins,
        and the steps and noises of the diffusion and composition terms."""
        b = batch["x"].shape[0]
        model = self.config.model
        keys = jax.random.split(key, 6)
        lc = self.config.loss
        return {
            **batch,
            "slot_noise": shared_slot_noise(keys[0], b, model.num_slots, model.slot_size,
                                            shared=lc.composition),
            "coin": jax.random.bernoulli(keys[1], 0.5, (b, model.num_slots)),
            "diffusion_step": jax.random.randint(keys[2], (b,), 0, DDPM_STEPS),
            "diffusion_eps": jax.random.normal(keys[3], (b, *self.target_shape)),
            "sds_step": jax.random.randint(keys[4], (b,), lc.sds_min_step, lc.sds_max_step),
            "sds_eps": jax.random.normal(keys[5], (b, *self.target_shape)),
        }

    def loss_terms(self, model: nnx.Module, batch: Batch) -> dict[str, jax.Array]:
        """The four terms of the module docstring (zeros for the composition path's when it is
        off), before weighting."""
        net, autoencoder = self._parts(model)
        x = batch["x"]
        x0 = self._target(autoencoder, x)
        alpha_bar = jnp.asarray(self.alpha_bar, jnp.float32)
        slots, masks = net.encode(x, batch["slot_noise"])
        reconstruction, _, _ = net.decode(slots)
        terms = {"oneshot": jnp.mean(jnp.square(reconstruction - x0))}
        a_k = alpha_bar[batch["diffusion_step"]]
        x_k = ddpm_noise(x0, batch["diffusion_eps"], a_k)
        eps_hat = net.denoise(x_k, batch["diffusion_step"], slots)
        terms["diffusion"] = jnp.mean(jnp.square(eps_hat - batch["diffusion_eps"]))
        if not self.config.loss.composition:
            zero = jnp.zeros((), jnp.float32)
            return {**terms, "composition": zero, "mask": zero}
        mixed = mix_slots(slots, batch["coin"])
        composite, _, _ = frozen(net.decoder)(mixed)
        a_c = alpha_bar[batch["sds_step"]]
        noised = ddpm_noise(composite, batch["sds_eps"], a_c)
        x0_hat = denoised_estimate(noised, net.denoise(noised, batch["sds_step"], mixed), a_c)
        terms["composition"] = composition_loss(composite, x0_hat, sds_weight(a_c))
        terms["mask"] = mask_regulariser(self._pixels(autoencoder, composite), x, masks,
                                         batch["coin"])
        return terms

    def loss(self, model: nnx.Module, batch: Batch) -> jax.Array:
        lc = self.config.loss
        terms = self.loss_terms(model, batch)
        return (lc.oneshot_weight * terms["oneshot"] + lc.diffusion_weight * terms["diffusion"]
                + lc.composition_weight * terms["composition"] + lc.mask_weight * terms["mask"])

    # Sampling and evaluation -----------------------------------------------------------------

    def source_batch(self, num: int, seed: int) -> dict[str, np.ndarray]:
        """`num` held-out scenes with their masks and independent initial-slot noise."""
        heldout = {**self.config.data.to_dict(), **self.config.evaluate.data.to_dict()}
        batch = next(data.build_dataset(heldout, global_batch_size=num, seed=seed))
        model = self.config.model
        noise = np.random.default_rng(seed).standard_normal(
            (num, model.num_slots, model.slot_size)).astype(np.float32)
        return {"x": np.asarray(batch["x"], np.float32), "mask": np.asarray(batch["mask"]),
                "slot_noise": noise}

    def sampler(self, time_grid: tuple[float, ...] = (0.0, 1.0)) -> BatchFn:
        """(model, batch, key) -> (B, H, W, C + 2K): the reconstruction, the decoder's masks and
        the slot-attention masks as channels; (B, 2, H, W, C) (scene, reconstruction) for a
        longer time grid."""

        def draw(model, batch, key):
            del key  # the batch's slot noise
            net, autoencoder = self._parts(model)
            x = batch["x"]
            slots, attention = net.encode(x, batch["slot_noise"])
            reconstruction, masks, _ = net.decode(slots)
            reconstruction = self._pixels(autoencoder, reconstruction)
            if len(time_grid) > 2:
                return jnp.stack([x, reconstruction], axis=1)
            rh, rw = x.shape[1] // masks.shape[2], x.shape[2] // masks.shape[3]
            masks = jnp.repeat(jnp.repeat(masks, rh, axis=2), rw, axis=3)
            channels = [reconstruction, masks.transpose(0, 2, 3, 1),
                        attention.transpose(0, 2, 3, 1)]
            return jnp.concatenate([c.astype(jnp.float32) for c in channels], axis=-1)

        return draw

    def sample_settings(self) -> dict[str, Any]:
        return {"sampled_from": "held-out scenes: reconstructions and slot masks"}

    def log_likelihood(self) -> BatchFn:
        """(model, batch, key) -> (B, len(SCORE_COLUMNS)) per-scene one-shot and diffusion
        squared errors (not a log-likelihood)."""

        def scores(model, batch, key):
            net, autoencoder = self._parts(model)
            x = batch["x"]
            b, c = x.shape[0], self.config.model
            keys = jax.random.split(key, 3)
            noise = jax.random.normal(keys[0], (b, c.num_slots, c.slot_size))
            slots, _ = net.encode(x, noise)
            x0 = self._target(autoencoder, x)
            reconstruction, _, _ = net.decode(slots)
            step = jax.random.randint(keys[1], (b,), 0, DDPM_STEPS)
            eps = jax.random.normal(keys[2], x0.shape)
            a_k = jnp.asarray(self.alpha_bar, jnp.float32)[step]
            eps_hat = net.denoise(ddpm_noise(x0, eps, a_k), step, slots)
            per_scene = lambda e: jnp.mean(jnp.square(e).reshape(b, -1), axis=1)  # noqa: E731
            return jnp.stack([per_scene(reconstruction - x0), per_scene(eps_hat - eps)], axis=1)

        return scores

    def likelihood_metrics(self, log_p: np.ndarray, points: np.ndarray) -> dict[str, float]:
        return {name: float(np.mean(column)) for name, column in zip(SCORE_COLUMNS, log_p.T)}

    def sample_metrics(self, samples: np.ndarray, reference: dict[str, np.ndarray],
                       mesh) -> dict[str, float]:
        """FG-ARI, ARI and mIoU of the slot-attention masks and of the decoder's masks
        (`*_decoder`) against the held-out scenes' masks."""
        k, c = self.config.model.num_slots, self.spec.event_shape[-1]
        n = min(len(samples), len(reference["mask"]))
        samples, true = np.asarray(samples[:n]), reference["mask"][:n]
        decoder = samples[..., c:c + k].transpose(0, 3, 1, 2)
        attention = samples[..., c + k:].transpose(0, 3, 1, 2)
        scores = segment_scores(true, attention)
        scores.update({f"{name}_decoder": v for name, v in segment_scores(true, decoder).items()})
        return scores


__all__ = [
    "BETA_SCHEDULES",
    "ComposeObjective",
    "composition_loss",
    "ddpm_alpha_bar",
    "ddpm_noise",
    "denoised_estimate",
    "frozen",
    "mask_regulariser",
    "mix_slots",
    "partner",
    "segment_scores",
    "shared_slot_noise",
    "sds_weight",
]
