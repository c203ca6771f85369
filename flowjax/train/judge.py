"""Judges of generative perplexity: the models that score a text model's samples.

Generative perplexity (MDLM, Sahoo et al., 2024, section 4.1) is the perplexity of samples under
another model. `load_judge(spec)` returns that model as a function tokens (B, L) -> log p (B,)
(all L tokens scored) with its vocabulary size:

  a directory holding a Hugging Face GPT-2 (`config.json` + weights; e.g. GPT-2 Large, the
      judge of MDLM, MD4, the Flow Matching Guide's text example and IMDM), converted to Flax by
      `flowjax.models.load_gpt2`; its <|endoftext|> token starts every sequence;
  a flowjax work directory of an `autoregressive` run (its newest checkpoint, the config saved
      with it, the EMA parameters): the AR model trained here on the same data and tokenizer.

Both judges score over all devices of all processes, data-parallel: the GPT-2's parameters are
replicated over a ("data", "fsdp", "tensor") mesh of all devices, the AR model's are placed on
its run's mesh. Every process calls the judge with the same tokens (B, L); they are padded to a
multiple of the data-parallel devices, scored as one global batch split over them
(`flowjax.train.trained.map_batches`), and log p (B,) comes back to every process: the same
scores, to float32 rounding, as one process on one device gives.

`text_sample_metrics(config, samples)` adds to a text run's sample metrics the unigram entropy of
the samples, their exact generative perplexity under the true process when the data are a
synthetic language (`flowjax.data.synthetic_language`), and their generative perplexity under
`config.evaluate.judge` when one is set. A judge that does not read the samples' vocabulary is
refused before anything is scored.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable

import jax
import ml_collections
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from flowjax import data, metrics
from flowjax.models import load_gpt2
from flowjax.parallel import batch_sharding, from_host, make_mesh, replicated
from flowjax.train import trained
from flowjax.train.checkpoint import Checkpointer
from flowjax.train.config import ConfigError

TEXT_SOURCES = ("synthetic_text", "text_files", "tfds_text", "python_docs")
"""Data sources whose examples are token sequences of a language."""

LogProb = Callable[[np.ndarray], np.ndarray]
GPT2_END_OF_TEXT = 50256


def load_judge(spec: str) -> tuple[LogProb, int]:
    """(log p of token sequences, vocabulary size) of the judge named by `spec` (see the module
    docstring)."""
    if os.path.isfile(os.path.join(spec, "config.json")):
        gpt2 = load_gpt2(spec)
        bos = GPT2_END_OF_TEXT if gpt2.config.vocab_size > GPT2_END_OF_TEXT else None
        mesh = make_mesh(ml_collections.ConfigDict(dict(mesh_shape=(-1, 1, 1))))
        graphdef, state = nnx.split(gpt2)  # the weights are arguments, not compiled constants
        state = jax.tree.map(lambda w: from_host(np.asarray(w), replicated(mesh)), state)
        score = jax.jit(
            lambda s, batch: nnx.merge(graphdef, s).log_prob(batch["x"], bos_token=bos),
            in_shardings=(replicated(mesh), batch_sharding(mesh)),
            out_shardings=batch_sharding(mesh),
        )
        return _log_prob_over(mesh, lambda batch, key: score(state, batch)), gpt2.config.vocab_size
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
        return _log_prob_over(flow.run.mesh, score), flow.run.objective.bos
    raise FileNotFoundError(
        f"The judge {spec!r} is neither a Hugging Face GPT-2 directory (with config.json) nor a "
        "flowjax work directory (with checkpoints/). For GPT-2 Large, on a machine with "
        "internet: python -c \"from transformers import GPT2LMHeadModel; "
        "GPT2LMHeadModel.from_pretrained('gpt2-large').save_pretrained('/path/gpt2-large')\" "
        "and copy the directory; or train a judge with an 'autoregressive' config."
    )


def _log_prob_over(
    mesh: Mesh, score: Callable[[dict[str, jax.Array], jax.Array], jax.Array]
) -> LogProb:
    """tokens (B, L) -> log p (B,) on every process: score({"x": tokens}, key) of one global
    batch of the B sequences padded to a multiple of the data-parallel devices of `mesh`."""

    def log_prob(tokens: np.ndarray) -> np.ndarray:
        tokens = np.asarray(tokens, np.int32)
        padded_size = trained.batch_multiple(mesh, len(tokens))
        return trained.map_batches(score, {"x": tokens}, padded_size, mesh, jax.random.key(0))

    return log_prob


def judge_vocab_size(spec: str) -> int:
    """The vocabulary a judge reads, from its files alone (nothing is built or compiled)."""
    config_file = os.path.join(spec, "config.json")
    if os.path.isfile(config_file):
        with open(config_file) as f:
            return int(json.load(f)["vocab_size"])
    if os.path.isdir(os.path.join(spec, "checkpoints")):
        with Checkpointer(spec) as checkpointer:
            config = checkpointer.restore_config()
        if config is not None:
            return int(data.vocab_size(config.data))
    load_judge(spec)  # raises the error that says what a judge must be
    raise AssertionError(spec)


def check_judge(config: ml_collections.ConfigDict) -> None:
    """Raises a ConfigError, before anything is compiled, when `evaluate.judge` is set but is not
    a judge or cannot read the data's tokens."""
    spec = config.evaluate.get("judge", "")
    if not spec:
        return
    try:
        judge_vocab = judge_vocab_size(spec)
    except (FileNotFoundError, ValueError) as error:
        raise ConfigError([f"evaluate.judge: {error}"]) from error
    vocab = data.vocab_size(config.data)
    if vocab is None or vocab > judge_vocab:
        raise ConfigError(
            [
                f"evaluate.judge={spec!r} reads {judge_vocab} tokens, but the data have "
                f"{vocab}: the judge must use the data's tokenizer (e.g. GPT-2 for GPT-2 tokens)."
            ]
        )


def is_text(config: ml_collections.ConfigDict) -> bool:
    return config.data.get("source") in TEXT_SOURCES


def text_sample_metrics(config: ml_collections.ConfigDict, samples: np.ndarray) -> dict:
    """Metrics of token samples (n, L): their mean unigram entropy; on a synthetic language their
    exact generative perplexity (`exact_gen_perplexity`, with the language's floor; infinite when
    a sample is impossible) and on the repeated-token task the fraction of valid samples; under
    `evaluate.judge`, their generative perplexity (`judge_gen_perplexity`)."""
    samples = np.asarray(samples)
    result = {"unigram_entropy": float(metrics.unigram_entropy(samples).mean())}
    if config.data.source == "synthetic_text":
        language = data.language(config.data)
        per_token = float(-language.log_prob(samples).mean() / samples.shape[1])
        result.update(
            exact_gen_nll_nats_per_token=per_token,
            exact_gen_perplexity=math.exp(per_token),
            perplexity_floor=language.perplexity_floor,
        )
        if isinstance(language, data.languages.RepeatedTokenLanguage):  # IMDM's task
            result["validity"] = metrics.sequence_validity(samples)
    if config.evaluate.get("judge", ""):
        log_prob, vocab = load_judge(config.evaluate.judge)
        scores = metrics.generative_perplexity(
            log_prob, samples, batch_size=config.evaluate.judge_batch_size, judge_vocab_size=vocab
        )
        result.update(
            judge_gen_perplexity=scores["gen_perplexity"],
            judge_gen_nll_nats_per_token=scores["gen_nll_nats_per_token"],
        )
    return result

