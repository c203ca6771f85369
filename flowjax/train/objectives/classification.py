"""The trainer objective "classification": classifiers with predictive uncertainty.

Nado et al., 2021, "Uncertainty Baselines: Benchmarks for Uncertainty & Robustness in Deep
Learning" (section 3): a classifier (`flowjax.models.uncertainty`, the method chosen by
`model.method`) is trained by cross-entropy on labelled examples ("x" images or vectors,
"label" ints),

    L = agg_m mean_i -log p_m(y_mi | x_mi) + l2 sum_W |W|^2

over the training members m (agg = sum for deep ensembles and MIMO, so each member gets the
gradient of its own training; the mean over the tiled batch for BatchEnsemble, as its paper;
one member otherwise) and the L2 penalty on every kernel (Uncertainty Baselines adds
`l2` times the summed squares of the kernels to the loss rather than decoupled weight decay).
The update's randomness (dropout masks, MIMO shuffles, logit noise) is one seed per example
drawn for the global batch; each (micro-)batch uses the key of its first seed.

Evaluation (`--mode=evaluate`): `classification_metrics` (accuracy, NLL, ECE with 15 bins,
Brier; `flowjax.metrics.calibration`) of the predictive on `evaluate.num_points` held-out
examples; then on the evaluation inputs of `source_batch`: OOD AUROC / AUPR by predictive
entropy of the held-out examples against each set of `evaluate.ood_sets` ("uniform_noise",
"inverted", "gaussian_blobs" of `flowjax.data.corruptions`, or "tfds:<name>" for a prepared
TFDS image set, e.g. SVHN for CIFAR), and accuracy / NLL / ECE on corrupted held-out examples
(`evaluate.corruptions` x `evaluate.severities`: synthetic corruptions of
`flowjax.data.corruptions`, or CIFAR-10-C from TFDS), averaged over all of them ("corrupt_*"),
per severity ("corrupt_*_s<k>") and per corruption ("corrupt_accuracy_<name>").

Sampling (`--mode=sample`) is prediction: the "samples" are the predictive probabilities
(N, K) of the evaluation inputs (held-out, then each OOD set, then each corruption and
severity, `evaluate.num_samples` of each; the inputs are fixed by `evaluate.seed`, so sampling
and evaluation score the same inputs, and `sample.num_samples` must equal
`evaluate.num_samples`); a longer time grid gives the members' (or MC passes')
probabilities (N, S, K). `log_likelihood` returns the predictive probabilities with the label
as a last column (B, K + 1), not a log-likelihood.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from flowjax import data, metrics
from flowjax.data import corruptions
from flowjax.models.uncertainty import small_classifier, wide_resnet_classifier
from flowjax.train import registry
from flowjax.train.objectives.base import Batch, BatchFn, DataSpec, Objective

CLASSIFIERS = (small_classifier, wide_resnet_classifier)
"""The model constructors this objective trains (registry entries of `flowjax.train`)."""
CLEAN = 0  # the group id of held-out examples in `source_batch`


class ClassificationObjective(Objective):
    """See the module docstring."""

    name = "classification"
    default_model = "small_classifier"
    data_kind = "continuous"
    path_defaults: dict[str, Any] = {}
    loss_defaults = dict(
        l2=0.0,  # times the summed squares of every kernel, added to the loss
    )
    sample_defaults: dict[str, Any] = {}
    evaluate_defaults = dict(
        ood_sets=("uniform_noise", "inverted"),  # see flowjax.data.corruptions.OOD_SETS
        corruptions=corruptions.CORRUPTIONS,
        severities=corruptions.SEVERITIES,
        corruption_source="synthetic",  # or "cifar10_corrupted" (TFDS, local)
        corruption_data_dir="",  # TFDS directory of cifar10_corrupted and OOD sets ("": default)
    )
    choices = {"evaluate.corruption_source": ("synthetic", "cifar10_corrupted")}
    non_negative = ("loss.l2",)

    def __init__(self, config: ml_collections.ConfigDict, spec: DataSpec):
        super().__init__(config, spec)
        ev = config.evaluate
        if registry.MODELS[config.model.name].cls not in CLASSIFIERS:
            raise ValueError(
                f"The objective {self.name!r} trains an uncertainty classifier "
                f"(model.name 'small_classifier' or 'wide_resnet'), got {config.model.name!r}.")
        if spec.num_classes is None:
            raise ValueError(
                f"The objective {self.name!r} needs labelled examples; config.data="
                f"{config.data.to_dict()} has no labels.")
        wanted = config.model.output_classes
        if wanted and wanted != spec.num_classes:
            raise ValueError(
                f"The model predicts model.output_classes={wanted} classes but the data have "
                f"{spec.num_classes}; set model.output_classes=0 (the data's) or "
                f"{spec.num_classes}.")
        if len(spec.event_shape) not in (1, 3):
            raise ValueError(
                f"The objective {self.name!r} classifies images (H, W, C) or vectors (D,); the "
                f"data have examples of shape {spec.event_shape}.")
        if config.sample.num_samples != ev.num_samples:
            raise ValueError(
                f"A classifier's samples are its predictions on the evaluation inputs: set "
                f"sample.num_samples ({config.sample.num_samples}) equal to "
                f"evaluate.num_samples ({ev.num_samples}).")
        known = (corruptions.CORRUPTIONS if ev.corruption_source == "synthetic"
                 else corruptions.CIFAR10_C)
        bad = [c for c in ev.corruptions if c not in known]
        bad_severity = [s for s in ev.severities if s not in corruptions.SEVERITIES]
        if bad or bad_severity:
            raise ValueError(
                f"evaluate.corruptions must name some of {known} (source "
                f"{ev.corruption_source!r}) and evaluate.severities some of "
                f"{corruptions.SEVERITIES}; got {bad or ''} {bad_severity or ''}.")
        bad_ood = [o for o in ev.ood_sets
                   if o not in corruptions.OOD_SETS and not o.startswith("tfds:")]
        if bad_ood:
            raise ValueError(f"evaluate.ood_sets: unknown {bad_ood}; use {corruptions.OOD_SETS} "
                             "or 'tfds:<name>'.")
        if ev.corruption_source == "cifar10_corrupted" and ev.corruptions:
            from flowjax.data.sources import tfds_builder

            tfds_builder(f"cifar10_corrupted/{ev.corruptions[0]}_{ev.severities[0]}",
                         ev.corruption_data_dir or None)

    # Training ----------------------------------------------------------------------------------

    def draw_step_noise(self, key: jax.Array, batch: Batch) -> Batch:
        return {**batch, "seed": jax.random.bits(key, batch["x"].shape[:1], jnp.uint32)}

    def loss(self, model: nnx.Module, batch: Batch) -> jax.Array:
        key = jax.random.key(batch["seed"][0])
        log_p, labels = model.train_log_probs(batch["x"], batch["label"], key)
        nll = -jnp.take_along_axis(log_p, labels[..., None], axis=-1)[..., 0].mean(axis=1)
        data_term = jnp.mean(nll) if self.config.model.method == "batchensemble" else jnp.sum(nll)
        if not self.config.loss.l2:
            return data_term
        kernels = [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(
            nnx.state(model, nnx.Param)) if "kernel" in jax.tree_util.keystr(path)]
        return data_term + self.config.loss.l2 * sum(jnp.sum(jnp.square(k)) for k in kernels)

    # Prediction --------------------------------------------------------------------------------

    def groups(self) -> list[str]:
        """The names of the evaluation input groups of `source_batch`, by group id."""
        ev = self.config.evaluate
        return (["heldout"] + [f"ood_{o}" for o in ev.ood_sets]
                + [f"{c}_{s}" for c in ev.corruptions for s in ev.severities])

    def source_batch(self, num: int, seed: int) -> dict[str, np.ndarray]:
        """The evaluation inputs (module docstring): "x", "label" (-1 for OOD inputs) and
        "group" (ids of `groups`), `num` of each group; fixed by evaluate.seed (`seed`, the
        caller's, is not used, so that samples and evaluation score the same inputs)."""
        del seed
        ev = self.config.evaluate
        heldout = {**self.config.data.to_dict(), **ev.data.to_dict()}
        batch = next(data.build_dataset(heldout, global_batch_size=num, seed=ev.seed))
        x, labels = np.asarray(batch["x"], np.float32), np.asarray(batch["label"], np.int32)
        xs, ys = [x], [labels]
        for i, name in enumerate(ev.ood_sets):
            if name.startswith("tfds:"):
                config = {**heldout, "source": "tfds", "name": name[5:], "label_key": None,
                          "data_dir": ev.corruption_data_dir or None}
                xs.append(np.asarray(next(data.build_dataset(
                    config, global_batch_size=num, seed=ev.seed))["x"], np.float32))
            else:
                xs.append(corruptions.ood_images(name, x, seed=ev.seed + 1 + i))
            ys.append(np.full(num, -1, np.int32))
        for i, name in enumerate(ev.corruptions):
            for severity in ev.severities:
                if ev.corruption_source == "synthetic":
                    xs.append(corruptions.corrupt(x, name, severity,
                                                  seed=ev.seed + 1000 * (i + 1) + severity))
                    ys.append(labels)
                else:
                    config = corruptions.cifar10_corrupted_config(
                        name, severity, ev.corruption_data_dir or None)
                    c = next(data.build_dataset(config, global_batch_size=num, seed=ev.seed))
                    xs.append(np.asarray(c["x"], np.float32))
                    ys.append(np.asarray(c["label"], np.int32))
        group = np.repeat(np.arange(len(xs), dtype=np.int32), num)
        return {"x": np.concatenate(xs), "label": np.concatenate(ys), "group": group}

    def sampler(self, time_grid: tuple[float, ...] = (0.0, 1.0)) -> BatchFn:
        def predict(model, batch, key):
            members = model.predict(batch["x"], key)
            return members if len(time_grid) > 2 else jnp.mean(members, axis=1)

        return predict

    def sample_settings(self) -> dict[str, Any]:
        return {"predicted": "probabilities of the evaluation inputs", "groups": self.groups(),
                "method": self.config.model.method}

    # Evaluation --------------------------------------------------------------------------------

    def log_likelihood(self) -> BatchFn:
        """(model, batch, key) -> (B, K + 1): predictive probabilities and the label (module
        docstring; not a log-likelihood)."""

        def scores(model, batch, key):
            probs = jnp.mean(model.predict(batch["x"], key), axis=1)
            return jnp.concatenate([probs, batch["label"][:, None].astype(probs.dtype)], axis=1)

        return scores

    def likelihood_metrics(self, log_p: np.ndarray, points: np.ndarray) -> dict[str, float]:
        probs, labels = log_p[:, :-1], np.rint(log_p[:, -1]).astype(np.int32)
        return metrics.classification_metrics(probs, labels)

    def points(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, np.float32).reshape(len(x), -1)

    compares_samples = True

    def sample_metrics(self, samples: np.ndarray, reference: dict[str, np.ndarray],
                       mesh: Any) -> dict[str, float]:
        """OOD detection and corrupted-input metrics of the predictions `samples` (N, K) of the
        evaluation inputs `reference` (module docstring)."""
        if len(samples) != len(reference["x"]):
            raise ValueError(
                f"Got {len(samples)} predictions for {len(reference['x'])} evaluation inputs: "
                "set sample.num_samples equal to evaluate.num_samples.")
        ev, group = self.config.evaluate, reference["group"]
        result: dict[str, float] = {}
        clean = samples[group == CLEAN]
        for i, name in enumerate(ev.ood_sets):
            scores = metrics.ood_detection(clean, samples[group == 1 + i])
            result.update({f"{k}_{name}": v for k, v in scores.items()})
        first = 1 + len(ev.ood_sets)
        table = {}
        for i, name in enumerate(ev.corruptions):
            for j, severity in enumerate(ev.severities):
                rows = group == first + i * len(ev.severities) + j
                table[name, severity] = metrics.classification_metrics(
                    samples[rows], reference["label"][rows])
        if table:
            for key in ("accuracy", "nll", "ece"):
                result[f"corrupt_{key}"] = float(np.mean([m[key] for m in table.values()]))
                for severity in ev.severities:
                    result[f"corrupt_{key}_s{severity}"] = float(np.mean(
                        [m[key] for (_, s), m in table.items() if s == severity]))
            for name in ev.corruptions:
                result[f"corrupt_accuracy_{name}"] = float(np.mean(
                    [m["accuracy"] for (c, _), m in table.items() if c == name]))
        return result
