"""Generative perplexity under a GPT-2 judge split over jax.distributed processes equals that of
one process.

Two processes with 2 virtual CPU devices each score the same samples: every batch of sequences is
padded to a multiple of the 4 devices and split over them (`flowjax.train.judge.load_judge`).
The judge is tests/data/gpt2_tiny/, a tiny GPT2LMHeadModel with random weights saved by
`save_pretrained` (tests/reference/make_gpt2_reference.py), so nothing is downloaded. The 2
processes run as workers of this file.
"""

from __future__ import annotations

import os

import numpy as np
from train_testing import finish, free_port, save_process_result, start_worker

CHECKPOINT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "gpt2_tiny")
SEQ_LEN = 16
CASES = {"batches_4_4_3": (11, 4), "one_batch_of_5": (5, 64)}  # name: (samples, batch_size)


def samples(num: int, vocab: int) -> np.ndarray:
    return np.random.default_rng(num).integers(0, vocab, (num, SEQ_LEN))


def scores() -> dict[str, np.ndarray]:
    """log p (n,) of every case's samples and their generative perplexity and NLL per token; and
    on how many devices the judge's token embedding (vocab, n_embd) is held whole."""
    import jax

    from flowjax.metrics import generative_perplexity
    from flowjax.train.judge import load_judge

    log_prob, vocab = load_judge(CHECKPOINT)
    out = {"embedding_copies": max(
        len(a.sharding.device_set) for a in jax.live_arrays()
        if a.ndim == 2 and a.shape[0] == vocab and a.is_fully_replicated
    )}
    for name, (num, batch_size) in CASES.items():
        x = samples(num, vocab)
        gen = generative_perplexity(log_prob, x, batch_size=batch_size, judge_vocab_size=vocab)
        out[f"{name}/log_p"] = np.asarray(log_prob(x), np.float64)
        out[f"{name}/gen_perplexity"] = np.float64(gen["gen_perplexity"])
        out[f"{name}/gen_nll_nats_per_token"] = np.float64(gen["gen_nll_nats_per_token"])
    return out


def test_two_processes_score_as_one_process(tmp_path):
    port = free_port()
    workers = [
        start_worker(f"--coordinator=127.0.0.1:{port}", f"--process-id={i}",
                     f"--out={tmp_path}", devices=2, script=__file__)
        for i in range(2)
    ]
    for worker in workers:
        finish(worker)
    expected = scores()
    del expected["embedding_copies"]
    for i in range(2):
        with np.load(tmp_path / f"process_{i}.npz") as got:
            assert int(got["embedding_copies"]) == 4  # the weights on every device of both
            for name, value in expected.items():
                np.testing.assert_allclose(got[name], value, rtol=1e-6, err_msg=name)


if __name__ == "__main__":
    save_process_result(scores)
