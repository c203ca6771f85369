"""Judges of generative perplexity: the models that score a text model's samples.

Generative perplexity (MDLM, Sahoo et al., 2024, section 4.1) is the perplexity of samples under
another model. `load_judge(spec)` returns that model as a function tokens (B, L) -> log p (B,)
(all L tokens scored) with its vocabulary size:

  a directory holding a Hugging Face GPT-2 (`config.json` + weights; e.g. GPT-2 Large, the
      judge of MDLM, MD4, the Flow Matching Guide's text example and IMDM), converted to Flax by
      `flowjax.models.load_gpt2`; its <|endoftext|> token starts every sequence;
  a flowjax work directory of an `autoregressive` run (its newest checkpoint, the config saved
      with it, the EMA parameters): the AR model trained here on the same data and tokenizer.

`text_sample_metrics(config, samples)` adds to a text run's sample metrics the unigram entropy of
the samples, their exact generative perplexity under the true process when the data are a
synthetic language (`flowjax.data.synthetic_language`), and their generative perplexity under
`config.evaluate.judge` when one is set. A judge that does not read the samples' vocabulary is
refused before anything is scored.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from flowjax import data, metrics
from flowjax.models import load_gpt2
from flowjax.train import trained
from flowjax.train.checkpoint import Checkpointer

LogProb = Callable[[np.ndarray], np.ndarray]
GPT2_END_OF_TEXT = 50256


def load_judge(spec: str) -> tuple[LogProb, int]:
    """(log p of token sequences, vocabulary size) of the judge named by `spec` (see the module
    docstring)."""
    if os.path.isfile(os.path.join(spec, "config.json")):
        gpt2 = load_gpt2(spec)
        bos = GPT2_END_OF_TEXT if gpt2.config.vocab_size > GPT2_END_OF_TEXT else None
        graphdef, state = nnx.split(gpt2)  # the weights are arguments, not compiled constants
        score = jax.jit(lambda s, tokens: nnx.merge(graphdef, s).log_prob(tokens, bos_token=bos))
        return (
            lambda x: np.asarray(score(state, jnp.asarray(x, jnp.int32)))
        ), gpt2.config.vocab_size
    if os.path.isdir(os.path.join(spec, "checkpoints")):
        with Checkpointer(spec) as checkpointer:
            config = checkpointer.restore_config()
        if config is None or config.objective != "autoregressive":
            raise ValueError(
                f"The judge {spec!r} must be the work directory of an 'autoregressive' run; its "
                f"checkpoint holds {'no config' if config is None else config.objective!r}."
            )
        flow = trained.load_trained_flow(config, spec)
        score = flow.compile(flow.run.objective.log_likelihood())
        batch = trained.batch_multiple(flow.run)

        def log_prob(x: np.ndarray) -> np.ndarray:
            return trained.map_batches(
                score, {"x": np.asarray(x, np.int32)}, batch, flow.run, jax.random.key(0)
            )

        return log_prob, flow.run.objective.bos
    raise FileNotFoundError(
        f"The judge {spec!r} is neither a Hugging Face GPT-2 directory (with config.json) nor a "
        "flowjax work directory (with checkpoints/). For GPT-2 Large, on a machine with "
        "internet: python -c \"from transformers import GPT2LMHeadModel; "
        "GPT2LMHeadModel.from_pretrained('gpt2-large').save_pretrained('/path/gpt2-large')\" "
        "and copy the directory; or train a judge with an 'autoregressive' config."
    )
