"""Inception statistics split over jax.distributed processes equal those of one process.

Each process scores its own part of every batch and the parts are merged
(`flowjax.metrics.inception.inception_statistics`); the network is replaced by fixed random
projections so that the test needs no weights. The 2 processes run as workers of this file.
"""

from __future__ import annotations

import os

import numpy as np
from train_testing import finish, free_port, save_process_result, start_worker

NUM_SAMPLES, BATCH = 50, 7  # the last batch holds 1 image: one process scores none of it


def source() -> list[np.ndarray]:
    images = np.random.default_rng(0).uniform(-1, 1, (56, 8, 8, 1))
    return [images[i : i + BATCH] for i in range(0, 56, BATCH)]


def feature_fn(images):
    from flowjax.metrics.inception import FEATURE_DIM, NUM_LOGITS

    rng = np.random.default_rng(1)
    pool_w, logit_w = rng.normal(size=(64, FEATURE_DIM)), rng.normal(size=(64, NUM_LOGITS))
    flat = np.asarray(images, np.float64).reshape(len(images), -1)
    return np.tanh(flat @ pool_w), flat @ logit_w / 4


def statistics() -> dict[str, np.ndarray]:
    from flowjax.metrics.inception import inception_statistics

    pool, score = inception_statistics(
        source(), NUM_SAMPLES, batch_size=BATCH, feature_fn=feature_fn, num_splits=5
    )
    return dict(count=pool.count, mean=pool.mean, covariance=pool.covariance,
                score=np.asarray(score.score()))


def test_two_processes_merge_to_one_process(tmp_path):
    port = free_port()
    workers = [
        start_worker(f"--coordinator=127.0.0.1:{port}", f"--process-id={i}",
                     f"--out={tmp_path}", script=__file__)
        for i in range(2)
    ]
    for worker in workers:
        finish(worker)
    expected = statistics()
    assert expected["count"] == NUM_SAMPLES
    for i in range(2):
        with np.load(tmp_path / f"process_{i}.npz") as got:
            assert int(got["count"]) == NUM_SAMPLES
            for name in ("mean", "covariance", "score"):
                np.testing.assert_allclose(got[name], expected[name], rtol=1e-12, atol=1e-14,
                                           err_msg=name)


if __name__ == "__main__":
    save_process_result(statistics)
