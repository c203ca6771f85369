"""Every config file of configs/ with the variants its docstring lists, and its resolved form as
JSON-able data (shared by tests/test_config_snapshot.py and tests/reference/make_config_snapshot.py)."""

from __future__ import annotations

import json
from typing import Any

from flowjax.train import load_config_file

_SIMFREE = (None, "trigonometric", "data_space", "backprop", "smoke", "backprop,smoke")
VARIANTS: dict[str, tuple[str | None, ...]] = {
    "configs/bytes/markov.py": (None, "smoke"),
    "configs/compose/clevrtex.py": (None, "baseline", "smoke", "baseline,smoke"),
    "configs/compose/multishapenet.py": (None, "baseline", "smoke"),
    "configs/compose/ptr.py": (None, "baseline", "smoke"),
    "configs/compose/scenes.py": (None, "baseline", "smoke", "baseline,smoke"),
    "configs/conditioning/digits.py": (None, "adaln", "smoke", "adaln,smoke"),
    "configs/conditioning/imagenet256.py": (None, "adaln", "smoke", "adaln,smoke"),
    "configs/conditioning/imagenet512.py": (None, "adaln", "smoke"),
    "configs/fds/checkerboard.py": (None, "smoke"),
    "configs/fds/mixture.py": (None, "sweep", "smoke"),
    "configs/flm/lm1b.py": (None, "flow_map", "one_call", "smoke", "flow_map,cpu"),
    "configs/flm/owt.py": (None, "flow_map", "one_call,smoke", "cpu"),
    "configs/flm/synthetic.py": (
        None, "markov", "repeated,flow_map", "repeated,one_call", "markov,mdm", "markov,flm,smoke",
        "repeated,one_call,smoke",
    ),
    "configs/fm_guide/checkerboard.py": (None, "demo", "smoke"),
    "configs/fm_guide/cifar10.py": (None, "dit_b2", "smoke", "dit_smoke"),
    "configs/fm_guide/digits.py": (None, "dit", "smoke", "dit_smoke"),
    "configs/fm_guide/discrete_checkerboard.py": (
        None, "mask", "uniform", "mask,demo", "uniform,demo", "mask,smoke", "uniform,smoke",
    ),
    "configs/fm_guide/imagenet32.py": (None, "smoke"),
    "configs/fm_guide/imagenet64.py": (None, "smoke"),
    "configs/fm_guide/text.py": (
        None, "mask_gkl", "uniform_ce", "uniform_gkl", "mask_ce,smoke", "uniform_gkl,cpu",
    ),
    "configs/generator_matching/checkerboard.py": (None, "8gaussians", "smoke"),
    "configs/generator_matching/mixture1d.py": (None, "smoke"),
    "configs/imdm/lm1b.py": (
        None, "mdm", "sdtt", "redi", "sdtt,mdm", "large", "teacher,smoke", "sdtt,imdm,cpu",
    ),
    "configs/imdm/owt.py": (None, "sdtt", "redi,large", "teacher,mdm,smoke", "teacher,cpu"),
    "configs/imdm/synthetic.py": (
        None, "teacher,mdm", "sdtt", "redi", "teacher,cpu", "sdtt,mdm,cpu", "redi,imdm,cpu",
        "teacher,smoke", "teacher,mdm,smoke",
    ),
    "configs/kinetic_optimal/checkerboard.py": (
        None, "mask", "uniform", "metric", "mask,demo", "uniform,demo", "metric,demo",
        "mask,smoke", "uniform,smoke", "metric,smoke",
    ),
    "configs/kinetic_optimal/text.py": (None, "uniform", "mask,smoke", "uniform,cpu"),
    "configs/lpl/digits.py": (
        None, "baseline", "autoencoder", "smoke", "baseline,smoke", "autoencoder,smoke",
    ),
    "configs/lpl/imagenet256.py": (None, "baseline", "smoke", "baseline,smoke"),
    "configs/lpl/imagenet512.py": (None, "baseline", "smoke"),
    "configs/mdlm/lm1b.py": (None, "ar", "mdlm,smoke", "ar,smoke", "mdlm,cpu", "ar,cpu"),
    "configs/mdlm/owt.py": (None, "ar", "mdlm,smoke", "ar,cpu"),
    "configs/mebt/moving_digits.py": (None, "smoke"),
    "configs/mebt/sky.py": (None, "smoke"),
    "configs/mebt/taichi.py": (None, "smoke"),
    "configs/mebt/tokenizer.py": (None, "tats", "fsq,mse", "smoke"),
    "configs/mebt/ucf101.py": (None, "smoke"),
    "configs/riemannian/sphere.py": (None, "smoke"),
    "configs/riemannian/torus.py": (None, "smoke"),
    "configs/simfree_node/cifar10.py": _SIMFREE,
    "configs/simfree_node/crossing_pairs.py": _SIMFREE,
    "configs/simfree_node/diabetes.py": _SIMFREE,
    "configs/simfree_node/digits.py": _SIMFREE,
    "configs/simfree_node/mnist.py": _SIMFREE,
    "configs/setvae/multimnist.py": (None, "smoke"),
    "configs/setvae/shapenet.py": (None, "chair", "car", "car,smoke"),
    "configs/setvae/shapes.py": (None, "smoke"),
    "configs/simfree_node/moons.py": _SIMFREE,
    "configs/simfree_node/svhn.py": _SIMFREE,
    "configs/uncertainty/cifar10.py": (
        None, "dropout", "ensemble", "batchensemble", "mimo", "sngp", "heteroscedastic",
        "sngp,smoke",
    ),
    "configs/uncertainty/cifar100.py": (None, "sngp", "ensemble,smoke"),
    "configs/uncertainty/digits.py": (
        None, "dropout", "ensemble", "batchensemble", "mimo", "sngp", "heteroscedastic", "smoke",
        "dropout,smoke", "ensemble,smoke", "batchensemble,smoke", "mimo,smoke", "sngp,smoke",
        "heteroscedastic,smoke",
    ),
}


def resolved(path: str, variant: str | None) -> Any:
    """The config of `path:variant` as JSON data (ConfigDicts as dicts, tuples as lists)."""
    config = load_config_file(path, variant)
    return json.loads(json.dumps(config.to_dict(), default=repr))
