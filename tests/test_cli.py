"""The command line: the checkerboard smoke variant trains, samples and evaluates end to end."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from train_testing import run_cli

SMOKE = "--config=configs/fm_guide/checkerboard.py:smoke"


def test_train_smoke_samples_and_evaluates(tmp_path):
    result = run_cli(
        SMOKE, f"--workdir={tmp_path}", "--mode=train", "--config.train.num_steps=12", timeout=300
    )
    assert result.returncode == 0, result.stderr[-5000:]

    assert sorted(d for d in os.listdir(tmp_path / "checkpoints") if d.isdigit()) == ["10", "12"]
    with open(tmp_path / "metrics.jsonl") as f:
        assert [json.loads(line)["step"] for line in f] == [5, 10, 12]
    assert np.load(tmp_path / "samples.npy").shape == (512, 2)
    assert np.load(tmp_path / "trajectories.npy").shape == (6, 64, 2)  # 6 times, 64 paths
    for plot in ("samples.png", "trajectories.png", "density.png"):
        assert (tmp_path / "plots" / plot).stat().st_size > 0
    with open(tmp_path / "metrics.json") as f:
        metrics = json.load(f)
    assert metrics["step"] == 12
    assert 0.0 <= metrics["fraction_in_support"] <= 1.0
    assert np.isfinite(metrics["nll_nats"])
    assert metrics["true_nll_nats"] == pytest.approx(np.log(32.0))
    # The last lines say where everything went.
    assert f"Metrics: {tmp_path}/metrics.json" in result.stdout
    assert f"{tmp_path}/plots/density.png" in result.stdout


def test_unknown_override_is_refused(tmp_path):
    result = run_cli(SMOKE, f"--workdir={tmp_path}", "--config.train.num_step=3", timeout=300)
    assert result.returncode != 0
    assert "num_step" in result.stderr
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.slow
def test_sample_and_evaluate_modes_read_the_checkpoint(tmp_path):
    trained = run_cli(
        SMOKE, f"--workdir={tmp_path}", "--config.evaluate.after_training=false", timeout=300
    )
    assert trained.returncode == 0, trained.stderr[-5000:]
    assert not (tmp_path / "samples.npy").exists()

    sampled = run_cli(SMOKE, f"--workdir={tmp_path}", "--mode=sample", timeout=300)
    assert sampled.returncode == 0, sampled.stderr[-5000:]
    assert np.load(tmp_path / "samples.npy").shape == (512, 2)
    assert (tmp_path / "plots" / "density.png").exists()
    assert not (tmp_path / "metrics.json").exists()

    evaluated = run_cli(SMOKE, f"--workdir={tmp_path}", "--mode=evaluate", timeout=300)
    assert evaluated.returncode == 0, evaluated.stderr[-5000:]
    with open(tmp_path / "metrics.json") as f:
        assert json.load(f)["step"] == 20


def test_sample_without_checkpoint_says_to_train_first(tmp_path):
    result = run_cli(SMOKE, f"--workdir={tmp_path}", "--mode=sample", timeout=300)
    assert result.returncode != 0
    assert "train first" in result.stderr
