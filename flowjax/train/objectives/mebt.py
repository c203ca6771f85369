"""The trainer objective "mebt": masked token modelling of video token grids with MeBT.

Yoo et al., CVPR 2023, "Towards End-to-End Generative Modeling of Long Videos with
Memory-Efficient Bidirectional Transformers", sections 3.3-3.4, in flowjax time (t = 0 every
token masked, the source; t = 1 the data):

Training (eq. 7). For each example t ~ U[0, 1]; a random permutation of the N = T h w tokens
of the clip masks its first ceil((1 - t) N) positions; the loss is the cross-entropy of the
masked tokens under the network's logits (`flowjax.models.MeBT`), averaged over the masked
tokens of each example and then over the batch (the authors draw one t per batch and average
over all its masked tokens). An example with no masked token (t = 1) adds 0.

Length curriculum (section 3.3, for long videos; `loss.curriculum_b` = b > 0). At update
`step` the clip length T (in latent frames) is drawn with weight

    w_T(step) = exp(-(step - (T - 1) b)^2 / (8 b^2)),                         T = 1 .. T_max

(the authors' `gaussian100000_2`: b = 1e5 for UCF-101 and Taichi, 3e4 for Sky), one T per
update for the whole batch, and each example is a clip of T consecutive frames starting at a
uniform frame of its video, with the positions of those frames. Variable lengths under jit:
the lengths of `loss.curriculum_lengths` (default every T from 1 to T_max) are the branches of
one `jax.lax.switch` inside the compiled step, each traced once at its static size, so that an
update costs what its own length costs (a length mask would pay for T_max every update). The
draw uses a uniform shared by the batch (drawn with the step's noise) against the cumulative
weights (a softmax of the log-weights, so no weight underflows).

Sampling (section 3.4; `sample.method`):

  "maskgit"           iterative decoding (Chang et al., 2022, MaskGIT): at step s of S (t_s =
                      s / S) the network predicts every masked token, a token is drawn from
                      each prediction, and of the masked positions the ceil(cos(pi t_s / 2) M)
                      (M: the masked count at the start) with the lowest confidence stay
                      masked, confidence being log p(drawn token) + tau (1 - t_s) g with
                      Gumbel noise g (the authors' Gumbel top-k with temperature tau annealed
                      linearly); the others keep their drawn token for good.
  "draft_and_revise"  the paper's sampler as the authors evaluate it (their UCF-101 128-frame
                      script: a MaskGIT draft of 32 steps, confidence temperature 2, top-k 32;
                      then M = 2 revision rounds of 32 steps at temperature 0.1): each round
                      splits the generated positions into `revise_steps` random parts and
                      redraws every part in turn given all the other tokens.

Token draws keep the `sample.top_k` most likely tokens (0: all) at `sample.temperature`.

Both run as `jax.lax` loops, one compiled program per sampling run. Evaluation reports the
masked-token cross-entropy (nats per masked token) of held-out grids at random t.

Data: token grids (B, t, h, w) int32 in [0, V) ("x"), e.g. the "video_tokens" source written
by a video tokenizer; the network reads V + 1 ids (id V is the mask).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx
from jaxtyping import Array, Bool, Float, Int

from flowjax.models.mebt import MeBT
from flowjax.train import registry
from flowjax.train.objectives.base import Batch, BatchFn, DataSpec, Objective

SAMPLE_METHODS = ("maskgit", "draft_and_revise")

LogitsFn = Callable[[jax.Array, jax.Array], jax.Array]
"""(tokens (B, N), visible (B, N)) -> logits (B, N, V)."""


# Pure functions ---------------------------------------------------------------------------------


def num_masked(t: Float[Array, "B"], num_tokens: int) -> Int[Array, "B"]:
    """ceil((1 - t) N): the tokens masked at time t (t = 0: all, t = 1: none)."""
    return jnp.ceil((1.0 - t) * num_tokens).astype(jnp.int32)


def random_mask(key: jax.Array, t: Float[Array, "B"], num_tokens: int) -> Bool[Array, "B N"]:
    """True at the first ceil((1 - t) N) positions of a random permutation of each row."""
    keys = jax.random.split(key, t.shape[0])
    count = num_masked(t, num_tokens)

    def row(key, n):
        order = jax.random.permutation(key, num_tokens)
        return jnp.zeros(num_tokens, bool).at[order].set(jnp.arange(num_tokens) < n)

    return jax.vmap(row)(keys, count)


def curriculum_log_weights(step: jax.Array, lengths: Sequence[int], b: float
                           ) -> Float[Array, "K"]:
    """log w_T(step) = -(step - (T - 1) b)^2 / (8 b^2) for each length T (module docstring)."""
    lengths = jnp.asarray(lengths, jnp.float32)
    step = jnp.asarray(step, jnp.float32)
    return -((step - (lengths - 1.0) * b) ** 2) / (8.0 * b**2)


def choose_bucket(u: Float[Array, ""], log_weights: Float[Array, "K"]) -> Int[Array, ""]:
    """The index k drawn with probability softmax(log_weights)_k from a uniform u in [0, 1)."""
    cdf = jnp.cumsum(jax.nn.softmax(log_weights))
    return jnp.sum(u >= cdf[:-1]).astype(jnp.int32)


def masked_cross_entropy(logits: Float[Array, "B N V"], targets: Int[Array, "B N"],
                         masked: Bool[Array, "B N"]) -> Float[Array, "B"]:
    """Per example: the mean over its masked positions of -log softmax(logits)[target] (0 for
    an example with none masked)."""
    log_p = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    nll = -jnp.take_along_axis(log_p, targets[..., None], axis=-1)[..., 0]
    count = jnp.sum(masked, axis=1)
    return jnp.sum(jnp.where(masked, nll, 0.0), axis=1) / jnp.maximum(count, 1)


def top_k_logits(logits: Float[Array, "... V"], k: int) -> Float[Array, "... V"]:
    """The logits with all but the k largest of each row set to -inf (k = 0: unchanged)."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = jax.lax.top_k(logits, k)[0][..., -1:]
    return jnp.where(logits < kth, -jnp.inf, logits)


def draw_tokens(key: jax.Array, logits: Float[Array, "B N V"], temperature: float, top_k: int
                ) -> tuple[Int[Array, "B N"], Float[Array, "B N"]]:
    """Tokens drawn from softmax(top_k(logits) / temperature) and their log-probabilities
    under that distribution."""
    logits = top_k_logits(logits.astype(jnp.float32), top_k) / temperature
    drawn = jax.random.categorical(key, logits, axis=-1)
    log_p = jnp.take_along_axis(jax.nn.log_softmax(logits, -1), drawn[..., None], -1)[..., 0]
    return drawn, log_p


def maskgit_decode(
    key: jax.Array,
    logits_fn: LogitsFn,
    x: Int[Array, "B N"],
    mask_id: int,
    *,
    steps: int,
    confidence_temperature: float,
    temperature: float = 1.0,
    top_k: int = 0,
    return_states: bool = False,
) -> Int[Array, "B N"] | Int[Array, "B S+1 N"]:
    """MaskGIT iterative decoding (module docstring) of the positions of x holding `mask_id`;
    the other tokens are a prompt and never change. Returns the decoded tokens (B, N), or with
    `return_states` the grid before the first step and after every step (B, steps + 1, N)."""
    if steps < 1:
        raise ValueError(f"MaskGIT decoding needs steps >= 1, got {steps}.")
    start_masked = jnp.sum(x == mask_id, axis=1)

    def step(carry, s):
        x, key = carry
        key, draw_key, gumbel_key = jax.random.split(key, 3)
        masked = x == mask_id
        drawn, log_p = draw_tokens(draw_key, logits_fn(x, ~masked), temperature, top_k)
        t_next = (s + 1.0) / steps
        gumbel = jax.random.gumbel(gumbel_key, log_p.shape)
        confidence = log_p + confidence_temperature * (1.0 - t_next) * gumbel
        confidence = jnp.where(masked, confidence, -jnp.inf)
        left = jnp.ceil(jnp.cos(0.5 * jnp.pi * t_next) * start_masked).astype(jnp.int32)
        left = jnp.where(s + 1 == steps, 0, jnp.minimum(left, jnp.sum(masked, 1)))
        reveal = jnp.sum(masked, axis=1) - left  # (B,)
        rank = jnp.argsort(jnp.argsort(-confidence, axis=1), axis=1)
        keep = masked & (rank < reveal[:, None])
        x = jnp.where(keep, drawn.astype(x.dtype), x)
        return (x, key), x

    (out, _), states = jax.lax.scan(step, (x, key), jnp.arange(steps))
    if return_states:
        return jnp.concatenate([x[:, None], states.swapaxes(0, 1)], axis=1)
    return out


def random_parts(key: jax.Array, generate: Bool[Array, "B N"], num_parts: int
                 ) -> Int[Array, "B N"]:
    """A random partition of each row's `generate` positions into `num_parts` parts of sizes
    differing by at most one: the part index of each position (-1 where not generated)."""
    keys = jax.random.split(key, generate.shape[0])

    def row(key, gen):
        scores = jnp.where(gen, jax.random.uniform(key, gen.shape), 2.0)
        rank = jnp.argsort(jnp.argsort(scores))
        return jnp.where(gen, (rank * num_parts) // jnp.maximum(jnp.sum(gen), 1), -1)

    return jax.vmap(row)(keys, generate)


def revise(
    key: jax.Array,
    logits_fn: LogitsFn,
    x: Int[Array, "B N"],
    generate: Bool[Array, "B N"],
    *,
    steps: int,
    rounds: int,
    temperature: float = 1.0,
    top_k: int = 0,
) -> Int[Array, "B N"]:
    """The paper's revision of a draft x (module docstring): `rounds` times, a new random
    partition of the `generate` positions into `steps` parts, each part redrawn in turn given
    all the other tokens; the positions outside `generate` never change."""
    if steps < 1 or rounds < 0:
        raise ValueError(f"revise needs steps >= 1 and rounds >= 0; got {steps}, {rounds}.")

    def revise_round(_, carry):
        x, key = carry
        key, part_key = jax.random.split(key)
        parts = random_parts(part_key, generate, steps)

        def revise_step(i, carry):
            x, key = carry
            key, sub = jax.random.split(key)
            targets = parts == i
            drawn, _ = draw_tokens(sub, logits_fn(x, ~targets), temperature, top_k)
            return jnp.where(targets, drawn.astype(x.dtype), x), key

        return jax.lax.fori_loop(0, steps, revise_step, (x, key))

    return jax.lax.fori_loop(0, rounds, revise_round, (x, key))[0]


def grid_logits_fn(model: MeBT, grid_shape: tuple[int, int, int]) -> LogitsFn:
    """The flat (tokens, visible) -> logits function of a MeBT over grids `grid_shape`."""

    def logits(tokens, visible):
        b = tokens.shape[0]
        out = model(tokens.reshape(b, *grid_shape), visible.reshape(b, *grid_shape))
        return out.reshape(b, tokens.shape[1], -1)

    return logits


# The objective ----------------------------------------------------------------------------------


class MeBTObjective(Objective):
    """See the module docstring."""

    name = "mebt"
    default_model = "mebt"
    data_kind = "discrete"
    path_defaults: dict[str, Any] = {}
    loss_defaults = dict(
        curriculum_b=0.0,  # b of the length curriculum, in updates (0: always the full length)
        curriculum_lengths=(),  # the clip lengths (latent frames) drawn from; (): 1 .. T_max
    )
    # The authors' UCF-101 evaluation settings (scripts/valid_dnr_*_ucf_128f.sh).
    sample_defaults = dict(
        method="draft_and_revise",  # or "maskgit" (the draft alone)
        steps=32,  # MaskGIT decoding steps of the draft
        confidence_temperature=2.0,  # tau of the Gumbel confidence, annealed as tau (1 - t)
        temperature=1.0,  # of the draft's token draws
        top_k=32,  # token draws from the k most likely tokens (0: all)
        revise_steps=32,  # parts per revision round
        revise_rounds=2,  # M
        revise_temperature=0.1,
    )
    evaluate_defaults: dict[str, Any] = {}
    choices = {"sample.method": SAMPLE_METHODS}
    positive = ("sample.steps", "sample.temperature", "sample.revise_steps",
                "sample.revise_temperature")
    non_negative = ("loss.curriculum_b", "sample.confidence_temperature", "sample.top_k",
                    "sample.revise_rounds")

    def __init__(self, config: ml_collections.ConfigDict, spec: DataSpec):
        super().__init__(config, spec)
        if registry.MODELS[config.model.name].cls is not MeBT:
            raise ValueError(
                f"The objective {self.name!r} trains a MeBT (model.name='mebt'), got "
                f"model.name={config.model.name!r}."
            )
        if len(spec.event_shape) != 3:
            raise ValueError(
                f"The objective {self.name!r} reads video token grids (t, h, w), e.g. "
                f"data.source='video_tokens'; the data have examples of shape {spec.event_shape}."
            )
        if spec.num_classes is not None:
            raise ValueError(
                f"The objective {self.name!r} is unconditional; the data have class labels."
            )
        frames = spec.event_shape[0]
        lengths = tuple(config.loss.curriculum_lengths) or tuple(range(1, frames + 1))
        if config.loss.curriculum_b > 0:
            bad = [n for n in lengths if not (isinstance(n, int) and 1 <= n <= frames)]
            if bad or len(set(lengths)) != len(lengths):
                raise ValueError(
                    f"loss.curriculum_lengths must be distinct clip lengths in [1, {frames}] (the "
                    f"data's {frames} latent frames, the model's positional table), got "
                    f"{tuple(config.loss.curriculum_lengths)}."
                )
        elif config.loss.curriculum_lengths:
            raise ValueError(
                "loss.curriculum_lengths is set but loss.curriculum_b is 0 (no curriculum): set "
                "loss.curriculum_b > 0 (the paper: 1e5 for UCF-101) or drop the lengths."
            )
        self.lengths = tuple(sorted(lengths))

    def model_kwargs(self) -> dict[str, Any]:
        return {"vocab_size": self.spec.vocab_size}

    @property
    def curriculum(self) -> bool:
        return self.config.loss.curriculum_b > 0

    def schedule_inputs(self, step: jax.Array) -> dict[str, jax.Array]:
        """The update count, for the length curriculum's weights."""
        return {"step": jnp.asarray(step, jnp.float32)} if self.curriculum else {}

    def draw_step_noise(self, key: jax.Array, batch: Batch) -> Batch:
        """Per example t ~ U[0, 1], a mask seed and the start of its clip (uniform in [0, 1),
        scaled to the drawn length); one uniform per update for the clip length."""
        b = batch["x"].shape[0]
        t_key, seed_key, start_key, length_key = jax.random.split(key, 4)
        out = {
            "x": batch["x"],
            "t": jax.random.uniform(t_key, (b,)),
            "mask_seed": jax.random.bits(seed_key, (b,), jnp.uint32),
        }
        if self.curriculum:
            out["clip_start"] = jax.random.uniform(start_key, (b,))
            out["length_draw"] = jnp.full((b,), jax.random.uniform(length_key, ()))
        return out

    def _clip_loss(self, model: MeBT, batch: Batch, length: int) -> Float[Array, "B"]:
        """Per-example masked cross-entropy on clips of `length` frames (module docstring)."""
        x = batch["x"]
        b, frames = x.shape[:2]
        if length < frames:
            start = jnp.floor(batch["clip_start"] * (frames - length + 1)).astype(jnp.int32)
            start = jnp.minimum(start, frames - length)
            x = jax.vmap(lambda v, s: jax.lax.dynamic_slice_in_dim(v, s, length, 0))(x, start)
        else:
            start = jnp.zeros((b,), jnp.int32)
        tokens = x.reshape(b, -1)
        keys = jax.vmap(jax.random.key)(batch["mask_seed"])
        masked = jax.vmap(lambda k, t: random_mask(k, t[None], tokens.shape[1])[0])(
            keys, batch["t"])
        positions = model.grid_positions(length)[None] + jnp.stack(
            [start, jnp.zeros_like(start), jnp.zeros_like(start)], -1)[:, None]
        logits = model.sequence_logits(tokens, positions, ~masked)
        return masked_cross_entropy(logits, tokens, masked)

    def loss(self, model: nnx.Module, batch: Batch) -> jax.Array:
        frames = batch["x"].shape[1]
        if not self.curriculum:
            return jnp.mean(self._clip_loss(model, batch, frames))
        log_w = curriculum_log_weights(batch["step"][0], self.lengths,
                                       self.config.loss.curriculum_b)
        index = choose_bucket(batch["length_draw"][0], log_w)
        graphdef, state = nnx.split(model)
        branches = [
            lambda state, n=n: jnp.mean(self._clip_loss(nnx.merge(graphdef, state), batch, n))
            for n in self.lengths
        ]
        return jax.lax.switch(index, branches, state)

    # Sampling ------------------------------------------------------------------------------------

    def source_batch(self, num: int, seed: int) -> dict[str, np.ndarray]:
        """`num` grids with every token masked (id V)."""
        del seed
        return {"x": np.full((num, *self.spec.event_shape), self.spec.vocab_size, np.int32)}

    def sampler(self, time_grid: tuple[float, ...] = (0.0, 1.0)) -> BatchFn:
        """Samples (B, t, h, w) of the positions of batch["x"] holding the mask id; for a longer
        grid the draft's partly decoded grids at the steps nearest the times of `time_grid`,
        (B, len(time_grid), t, h, w) (the revised sample last)."""
        sc, shape = self.config.sample, self.spec.event_shape
        mask_id = self.spec.vocab_size
        picks = np.rint(np.asarray(time_grid) * sc.steps).astype(int)
        trajectory = len(time_grid) > 2

        def draw(model, batch, key):
            x = batch["x"]
            b = x.shape[0]
            logits_fn = grid_logits_fn(model, shape)
            flat = x.reshape(b, -1)
            draft_key, revise_key = jax.random.split(key)
            states = maskgit_decode(draft_key, logits_fn, flat, mask_id, steps=sc.steps,
                                    confidence_temperature=sc.confidence_temperature,
                                    temperature=sc.temperature, top_k=sc.top_k,
                                    return_states=True)
            out = states[:, -1]
            if sc.method == "draft_and_revise":
                out = revise(revise_key, logits_fn, out, flat == mask_id,
                             steps=sc.revise_steps, rounds=sc.revise_rounds,
                             temperature=sc.revise_temperature, top_k=sc.top_k)
            if trajectory:
                return states[:, picks].at[:, -1].set(out).reshape(b, len(time_grid), *shape)
            return out.reshape(x.shape)

        return draw

    def sample_settings(self) -> dict[str, Any]:
        sc = self.config.sample
        keys = ["steps", "confidence_temperature", "temperature", "top_k"]
        if sc.method == "draft_and_revise":
            keys += ["revise_steps", "revise_rounds", "revise_temperature"]
        return {"method": sc.method, **{k: sc[k] for k in keys}}

    # Evaluation ----------------------------------------------------------------------------------

    def log_likelihood(self) -> BatchFn:
        """(model, batch, key) -> (B,) the masked-token cross-entropy of each held-out grid at
        a random t (nats per masked token; not a log-likelihood)."""

        def scores(model, batch, key):
            x = batch["x"]
            noise = self.draw_step_noise(key, {"x": x})
            return self._clip_loss(model, noise, x.shape[1])

        return scores

    def likelihood_metrics(self, log_p: np.ndarray, points: np.ndarray) -> dict[str, float]:
        return {"masked_token_cross_entropy": float(np.mean(log_p))}

    def points(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, np.float32).reshape(len(x), -1)


__all__ = [
    "MeBTObjective",
    "choose_bucket",
    "curriculum_log_weights",
    "masked_cross_entropy",
    "maskgit_decode",
    "num_masked",
    "random_mask",
    "revise",
    "top_k_logits",
]
