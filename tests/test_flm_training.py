"""The "flm" objective in the trainer: FLM, then FMLM's two stages, each started from the last with
`train.init_from` (which weights go where), sampling every stage, and configs refused early."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

from flowjax.train import ConfigError, inference, load_config_file, train, validate_config
from flowjax.train.registry import model_defaults
from flowjax.train.trained import load_trained_flow

CONFIG = "configs/flm/synthetic.py"


def smoke(stage: str, **overrides):
    config = load_config_file(CONFIG, f"repeated,{stage},smoke")
    config.evaluate.after_training = False
    config.sample.update(num_samples=8, batch_size=8, num_trajectories=2)
    for key, value in overrides.items():
        section, name = key.split(".")
        config[section][name] = value
    return config


def pure(tree) -> dict:
    return nnx.to_pure_dict(tree)


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    root = tmp_path_factory.mktemp("flm")
    flm, stage_one, stage_two = (str(root / n) for n in ("flm", "map", "one"))
    train(smoke("flm"), flm)
    short = {"train.num_steps": 2, "checkpoint.every_steps": 2}
    train(smoke("flow_map", **short, **{"train.init_from": flm}), stage_one)
    train(smoke("one_call", **short, **{"train.init_from": stage_one}), stage_two)
    return flm, stage_one, stage_two


def test_each_stage_starts_from_the_last(stages, tmp_path):
    flm, stage_one, stage_two = stages
    from flowjax.train.init_from import load_init_weights
    from flowjax.train.setup import setup_run
    from flowjax.train.state import init_train_state

    weights = pure(load_trained_flow(smoke("flm"), flm).state.ema_params)

    def initial(config):
        run = setup_run(config)
        state = init_train_state(run.model_fn, run.optimizer, 0, run.shardings)
        return load_init_weights(config, state, run.mesh)

    one = initial(smoke("flow_map", **{"train.init_from": flm}))
    student, frozen = pure(one.params)["student"], pure(one.model_state)["teacher_weights"]
    np.testing.assert_array_equal(frozen["embedding"], weights["embedding"])
    np.testing.assert_array_equal(student["blocks"][0]["qkv"]["kernel"], weights["blocks"][0]["qkv"]["kernel"])
    assert np.abs(weights["head"]["kernel"]).max() > 0  # trained, yet the student's starts at 0
    assert np.abs(student["head"]["kernel"]).max() == 0 and np.abs(frozen["head"]["kernel"]).max() > 0
    assert np.abs(student["end_time"]["fc2"]["kernel"]).max() == 0

    trained_one = load_trained_flow(smoke("flow_map", **{"train.init_from": flm}), stage_one).state
    two = initial(smoke("one_call", **{"train.init_from": stage_one}))
    source_map = pure(trained_one.ema_params)["student"]
    source_flm = pure(trained_one.model_state)["teacher_weights"]
    student, state = pure(two.params)["student"], pure(two.model_state)
    np.testing.assert_array_equal(student["head"]["kernel"], source_flm["head"]["kernel"])
    np.testing.assert_array_equal(state["teacher_weights"]["head"]["kernel"], source_flm["head"]["kernel"])
    np.testing.assert_array_equal(state["map_weights"]["head"]["kernel"], source_map["head"]["kernel"])
    assert np.abs(source_map["head"]["kernel"]).max() > 0  # the map trained away from zero


def test_every_stage_samples(stages):
    sources = (None, stages[0], stages[1])
    for stage, workdir, source in zip(("flm", "flow_map", "one_call"), stages, sources):
        config = smoke(stage, **({"train.init_from": source} if source else {}))
        result = inference.sample(config, workdir)
        samples = result["samples"]
        assert samples.shape == (8, 8) and samples.min() >= 0 and samples.max() < 26
        assert 0.0 <= result["metrics"]["validity"] <= 1.0
    trajectories = np.load(result["files"]["trajectories"])
    assert trajectories.shape == (6, 2, 8)  # the argmax at each of the six trajectory times


def test_bad_flm_configs_are_refused_before_compiling(stages, tmp_path):
    flm = stages[0]
    cases = {
        "no init_from": (smoke("flow_map"), "train.init_from"),
        "one time": (smoke("flow_map", **{"train.init_from": flm, "model.map_time": False}), "map_time=True"),
        "stage two from an FLM": (smoke("one_call", **{"train.init_from": flm}), "teacher_weights"),
        "other vocabulary": (smoke("flow_map", **{"train.init_from": flm}), "embedding"),
        "wrong model": (smoke("flm"), "flm_transformer"),
    }
    cases["wrong model"][0].model = model_defaults("text_transformer")
    cases["other vocabulary"][0].data.vocab_size = 30
    for name, (config, message) in cases.items():
        with pytest.raises(ConfigError, match=message):
            validate_config(config)
