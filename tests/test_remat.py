"""Activation rematerialisation (`model.remat`) changes what the backward pass keeps, never the
values: every network gives the same output and gradients under "none", "full" and "dots", with
dropout on (its per-example masks are recomputed identically), and an unknown policy is refused."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from flowjax.models import DiT, TextTransformer, UNet
from tests.test_unet_dit import TINY_UNET, randomise

X_IMAGE = jax.random.normal(jax.random.key(5), (2, 8, 8, 1))
TOKENS = jax.random.randint(jax.random.key(6), (2, 8), 0, 11)
SEEDS = jnp.asarray([3, 9], jnp.uint32)


def network(name: str, remat: str):
    """The randomised DiT, UNet (dropout 0.3) or text transformer (dropout 0.3) under `remat`,
    and its loss sum(output ** 2)."""
    label = jnp.asarray([1, 2])
    if name == "dit":
        model = DiT((8, 8, 1), patch_size=2, hidden_dim=32, depth=2, num_heads=2, num_classes=10,
                    remat=remat, rngs=nnx.Rngs(0))
        return randomise(model), lambda m: jnp.sum(m(X_IMAGE, 0.3, label) ** 2)
    if name == "unet":
        model = UNet((8, 8, 1), **TINY_UNET, dropout=0.3, num_classes=10, remat=remat,
                     rngs=nnx.Rngs(0))
        return randomise(model), lambda m: jnp.sum(m(X_IMAGE, 0.3, label, SEEDS) ** 2)
    model = TextTransformer((8,), vocab_size=11, hidden_dim=16, depth=2, num_heads=2,
                            dropout=0.3, remat=remat, rngs=nnx.Rngs(0))
    return randomise(model), lambda m: jnp.sum(m(TOKENS, 0.3, dropout_seed=SEEDS) ** 2)


@functools.cache
def value_and_grads(name: str, remat: str):
    model, loss = network(name, remat)
    value, grads = nnx.jit(nnx.value_and_grad(loss))(model)
    return float(value), jax.tree.leaves(grads)


@pytest.mark.parametrize(
    "name, remat",
    [("text", "full"), ("text", "dots"), pytest.param("unet", "full", marks=pytest.mark.slow),
     ("dit", "dots")],
)
def test_remat_gives_the_same_values_and_gradients(name, remat):
    value, grads = value_and_grads(name, "none")
    value_remat, grads_remat = value_and_grads(name, remat)
    assert value > 0
    np.testing.assert_allclose(value_remat, value, rtol=1e-6)
    for a, b in zip(grads_remat, grads, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_remat_recomputes_in_the_backward_pass():
    """Under "full" the compiled gradient runs each block's forward again: more FLOPs."""
    flops = {}
    for remat in ("none", "full"):
        model, loss = network("text", remat)
        graphdef, state = nnx.split(model)
        grad = jax.jit(jax.grad(lambda s: loss(nnx.merge(graphdef, s))))
        flops[remat] = grad.lower(state).compile().cost_analysis()["flops"]
    assert flops["full"] > 1.1 * flops["none"], flops


def test_unknown_remat_policy_is_refused():
    for build in (
        lambda: DiT((8, 8, 1), patch_size=2, hidden_dim=32, depth=1, num_heads=2,
                    remat="some", rngs=nnx.Rngs(0)),
        lambda: UNet((8, 8, 1), **TINY_UNET, remat="some", rngs=nnx.Rngs(0)),
        lambda: TextTransformer((8,), vocab_size=11, hidden_dim=16, depth=1, num_heads=2,
                                remat="some", rngs=nnx.Rngs(0)),
    ):
        with pytest.raises(ValueError, match="remat must be one of"):
            build()
