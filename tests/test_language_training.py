"""The language-model objectives through the trainer, on a synthetic language: masked diffusion
and the autoregressive baseline train, sample and evaluate, with the exact generative perplexity
of their samples and the AR run as the judge of the masked model's samples; a judge that cannot
read the data's tokens stops the run before anything is compiled."""

from __future__ import annotations

import pytest

from flowjax.train import ConfigError, default_config, inference, train


def language_config(objective: str):
    config = default_config(objective)
    config.data = dict(source="synthetic_text", name="markov", vocab_size=8, seq_len=12)
    config.model.update(hidden_dim=32, depth=1, num_heads=2, cond_dim=16)
    config.model.time_conditioning = objective == "discrete_flow_matching"
    config.model.causal = objective == "autoregressive"
    if objective == "masked_diffusion":
        config.sample.step_size = 1 / 12
    config.train.update(num_steps=20, global_batch_size=32, log_every=10)
    config.checkpoint.every_steps = 20
    config.sample.update(num_samples=64, batch_size=64, num_trajectories=4)
    config.evaluate.update(num_points=64, batch_size=64, num_samples=64)
    return config


@pytest.fixture(scope="module")
def ar_workdir(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("ar"))
    config = language_config("autoregressive")
    config.evaluate.after_training = False
    train(config, workdir)
    return workdir


def test_masked_diffusion_and_autoregressive_runs_with_a_judge(ar_workdir, tmp_path):
    ar = inference.evaluate(language_config("autoregressive"), ar_workdir)["metrics"]
    floor = ar["perplexity_floor"]
    assert floor < ar["perplexity"] < 8.5  # between the language's floor and a uniform guess
    config = language_config("masked_diffusion")
    config.evaluate.judge = ar_workdir
    train(config, str(tmp_path))
    sampled = inference.sample(config, str(tmp_path))["metrics"]
    assert sampled["exact_gen_perplexity"] > floor and 0 < sampled["unigram_entropy"] < 2.5
    assert 1 < sampled["judge_gen_perplexity"] < 9
    evaluated = inference.evaluate(config, str(tmp_path))["metrics"]
    assert evaluated["elbo_perplexity"] > floor


def test_a_judge_with_a_smaller_vocabulary_is_refused(ar_workdir, tmp_path):
    config = language_config("masked_diffusion")
    config.data.vocab_size = 16  # the AR judge reads 8 tokens
    config.evaluate.judge = ar_workdir
    with pytest.raises(ConfigError, match="reads 8 tokens, but the data have 16"):
        train(config, str(tmp_path))
    assert not (tmp_path / "checkpoints").exists()


TEXT_CONFIGS = [
    "configs/mdlm/lm1b.py:mdlm,smoke",
    "configs/mdlm/owt.py:ar,smoke",
    "configs/fm_guide/text.py:uniform_gkl,smoke",
    "configs/kinetic_optimal/text.py:mask,smoke",
]


@pytest.mark.slow
@pytest.mark.parametrize("config_arg", TEXT_CONFIGS)
def test_text_config_smoke_runs_through_the_cli(config_arg, tmp_path):
    from train_testing import run_cli

    result = run_cli(f"--config={config_arg}", f"--workdir={tmp_path}")
    assert "exact_gen_perplexity" in result.stdout and "perplexity_floor" in result.stdout


@pytest.mark.slow
def test_autoregressive_model_reaches_the_entropy_floor(tmp_path):
    """On an order-1 Markov language of 8 symbols (sequences of 12), 1,500 updates bring the AR
    model's exact held-out perplexity within 3% of the floor exp(H / L)."""
    config = language_config("autoregressive")
    config.data.concentration = 0.3
    config.model.update(hidden_dim=64, depth=2, num_heads=4)
    config.optim.update(learning_rate=2e-3, warmup_steps=100, ema_decay=0.99)
    config.train.update(num_steps=1500, global_batch_size=64, log_every=500)
    config.checkpoint.every_steps = 1500
    config.evaluate.update(num_points=4096, batch_size=512, after_training=False)
    train(config, str(tmp_path))
    result = inference.evaluate(config, str(tmp_path))["metrics"]
    assert result["perplexity"] < 1.03 * result["perplexity_floor"], result
