"""Guarantee regions of LIME explanations (Havasi et al., 2024) for two flowjax classifiers.

1. Two moons (tabular, 2 features): the simulation-free neural ODE of
   `configs/simfree_node/moons.py` (Kim et al., 2024), trained here by the shared trainer and
   read as f(x) = its one-Euler-step prediction h(z(1)) (class scores). Each explained test
   point gets a LIME surrogate (1,000 perturbations of std 0.3) and the largest box inside the
   data's bounding box where the surrogate's class equals the model's on a fraction
   rho = 0.99 of it, with confidence 0.99. Picture: the model's classes, the points and their
   boxes.
2. Diabetes (tabular regression, 10 standardised features): the simulation-free neural ODE of
   `configs/simfree_node/diabetes.py`, read the same way (its standardised prediction). LIME
   surrogates of std 0.1 (at 0.5 the fitted plane misses the curved model by more than eps at
   some of the explained points themselves) and boxes inside the data's bounding box (widened
   by 0.5) where |f - g| < eps = 0.2 target standard deviations on a fraction rho of it.
   Picture: LIME's weights and the box's sides per feature.
3. Digits (64 pixels in [-1, 1]): the digits classifier of `flowjax.metrics` (an MLP); LIME of
   its class probabilities (perturbations of std 0.5) and the box inside [-1, 1]^64 where the
   surrogate's class matches the model's. Picture: a digit, its LIME weights for the predicted
   class and the width of its box per pixel.

4. Properties of five explainers (Chen et al., 2022) of the digits classifier, on 64 test
   digits, the predicted class explained: vanilla gradient, gradient x input, integrated
   gradients (64 trapezoid steps from the blank image, all pixels -1), SmoothGrad (50 draws,
   sigma 0.15), LIME (500 perturbations of std 0.5), and random attributions as the control.
   Faithfulness: infidelity (square removal of 2x2 patches to -1, 64 draws), the areas under
   RISE's deletion and insertion curves of the class probability (pixels to / from -1, 4 per
   step); robustness: max-sensitivity and the local Lipschitz estimate (16 neighbours in the
   L_inf ball of radius 0.1); complexity: Gini sparsity and entropy of |phi|; homogeneity: the
   gap between the digit classes' mean infidelity. The same for the diabetes NODE on its 89
   test patients: baseline the mean patient (0), SmoothGrad sigma 0.1, LIME std 0.1, Gaussian
   infidelity (std 0.1, 64 draws), one feature per deletion step, groups by sex.

Reported per data set: the explained points, the fraction of boxes that passed, the mean box
volume as a fraction of the starting box (its geometric-mean side for digits), the model calls
and the seconds per explained point, and an independent check of each box: the agreement of
surrogate and model on 20,000 fresh uniform points in it (the guarantee says >= 0.99 for all but
about 1% of the boxes).

Parts run in the order properties, moons, diabetes, digits (`--parts` picks some; the other
parts' entries in <out>/results.json are kept); results.json is rewritten after each. The two
NODEs are trained under <workdir>/{moons,diabetes} unless already there.

    nice -n 5 python experiments/explain/run.py --workdir=/tmp/explain \
        --out=experiments/explain/results --points=20 --digit-points=10
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RHO, DELTA, CHECK_POINTS = 0.99, 0.01, 20_000
# In 64 dimensions the exact largest-box search rarely ends below the default 20,000 boxes and
# runs after every failed test; past this many it keeps the greedy box.
DIGITS_MAX_NODES = 300
DIABETES_TOLERANCE = 0.2  # eps in target standard deviations


def explain_points(model, points, lower, upper, *, scale, seed, max_nodes=20_000,
                   tolerance=None):
    """LIME surrogate and guarantee region of each point; the regions, the surrogates, seconds
    per point, and each box's agreement on fresh uniform points."""
    import jax

    from flowjax.explain import guarantee, lime

    regions, surrogates, seconds, purities = [], [], [], []
    for i, x in enumerate(points):
        key = jax.random.key(seed + i)
        start = time.perf_counter()
        surrogate = lime.lime_surrogate(model, jax.numpy.asarray(x), key, num_samples=1000,
                                        scale=scale)
        agree = guarantee.surrogate_agreement(model, surrogate, tolerance=tolerance)
        region = guarantee.guarantee_region(agree, x, lower, upper, jax.random.fold_in(key, 1),
                                            rho=RHO, delta=DELTA, max_nodes=max_nodes)
        seconds.append(time.perf_counter() - start)
        print(f"point {i}: {seconds[-1]:.1f} s, {region.tests} tests", flush=True)
        fresh = np.random.default_rng(seed + i).uniform(region.lower, region.upper,
                                                        (CHECK_POINTS, len(x)))
        purities.append(float(np.mean(agree(fresh.astype(np.float32)))))
        regions.append(region)
        surrogates.append(surrogate)
    return regions, surrogates, seconds, purities


def summary(regions, seconds, purities, lower, upper) -> dict:
    d = len(lower)
    log_fraction = np.array([r.log_volume() - np.sum(np.log(upper - lower)) for r in regions])
    return {
        "points": len(regions),
        "passed": float(np.mean([r.passed for r in regions])),
        "mean_volume_fraction": float(np.mean(np.exp(log_fraction))),
        "mean_side_fraction": float(np.mean(np.exp(log_fraction / d))),
        "model_calls_per_point": float(np.mean([r.model_calls for r in regions])),
        "tests_per_point": float(np.mean([r.tests for r in regions])),
        "seconds_per_point": float(np.median(seconds)),
        "fresh_agreement_min": float(np.min(purities)),
        "boxes_below_rho": float(np.mean(np.array(purities) < RHO)),
    }


def trained_node(name: str, workdir: str):
    """The simulation-free NODE of configs/simfree_node/<name>.py, trained in workdir unless
    already there, as f(x (n, d)) -> its one-Euler-step prediction (n, k)."""
    from flax import nnx

    from flowjax import solvers
    from flowjax.train import load_config_file, train
    from flowjax.train.trained import load_trained_flow

    config = load_config_file(os.path.join(REPO, "configs", "simfree_node", f"{name}.py"), None)
    config.evaluate.after_training = False
    if not os.path.isdir(os.path.join(workdir, "checkpoints")):
        train(config, workdir)
    flow = load_trained_flow(config, workdir)
    node = nnx.merge(flow.run.graphdef, flow.state.ema_params, flow.state.model_state)
    return lambda x: solvers.ode_predict(node, x, method="euler", step_size=1.0)


def moons(workdir: str, out: str, count: int) -> dict:
    import jax
    import jax.numpy as jnp
    import matplotlib.pyplot as plt

    from flowjax.data.tabular import tabular_arrays

    model = trained_node("moons", os.path.join(workdir, "moons"))  # (n, 2) -> class scores
    x_train, _ = tabular_arrays("moons", "train")
    x_test, y_test = tabular_arrays("moons", "test")
    lower, upper = x_train.min(0) - 0.5, x_train.max(0) + 0.5
    accuracy = float(np.mean(np.argmax(np.asarray(jax.jit(model)(x_test)), -1) == y_test))
    points = x_test[:count].astype(np.float64)
    regions, _, seconds, purities = explain_points(model, points, lower, upper, scale=0.3, seed=0)

    grid = np.stack(np.meshgrid(np.linspace(lower[0], upper[0], 200),
                                np.linspace(lower[1], upper[1], 200)), -1).reshape(-1, 2)
    classes = np.argmax(np.asarray(jax.jit(model)(jnp.asarray(grid, jnp.float32))), -1)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.imshow(classes.reshape(200, 200), origin="lower", cmap="Pastel1", alpha=0.8,
              extent=(lower[0], upper[0], lower[1], upper[1]), aspect="auto")
    for x, region in zip(points, regions):
        ax.add_patch(plt.Rectangle(region.lower, *(region.upper - region.lower), fill=False,
                                   lw=1.0, color="k" if region.passed else "r"))
        ax.plot(*x, "k.", ms=4)
    ax.set_title("Two moons, simulation-free NODE: guarantee regions of LIME "
                 f"(rho = {RHO}, 1 - delta = {1 - DELTA})", fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "moons_boxes.png"), dpi=100)
    plt.close(fig)
    return {"model": "simfree_node moons (one Euler step)", "test_accuracy": accuracy,
            **summary(regions, seconds, purities, lower, upper)}


def diabetes(workdir: str, out: str, count: int) -> dict:
    import jax
    import matplotlib.pyplot as plt

    from flowjax.data.tabular import tabular_arrays, target_scale

    model = trained_node("diabetes", os.path.join(workdir, "diabetes"))  # (n, 10) -> (n, 1)
    x_train, _ = tabular_arrays("diabetes", "train")
    x_test, y_test = tabular_arrays("diabetes", "test")
    lower, upper = x_train.min(0) - 0.5, x_train.max(0) + 0.5
    rmse = float(np.sqrt(np.mean((np.asarray(jax.jit(model)(x_test)) - y_test) ** 2)))
    points = x_test[:count].astype(np.float64)
    regions, surrogates, seconds, purities = explain_points(
        model, points, lower, upper, scale=0.1, seed=200, tolerance=DIABETES_TOLERANCE)

    shown = min(count, 4)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3))
    features = np.arange(points.shape[1])
    for row in range(shown):
        axes[0].plot(features, np.asarray(surrogates[row].weights[:, 0]), "o-", ms=3,
                     label=f"patient {row}")
        axes[1].vlines(features + 0.15 * (row - shown / 2), regions[row].lower,
                       regions[row].upper, lw=3, color=f"C{row}")
        axes[1].plot(features + 0.15 * (row - shown / 2), points[row], "k.", ms=3)
    axes[1].vlines(features - 0.45, lower, upper, lw=1, color="0.7")
    axes[0].set_title("LIME weights (standardised units)", fontsize=8)
    axes[1].set_title(f"guarantee boxes, |f - g| < {DIABETES_TOLERANCE} (grey: domain)",
                      fontsize=8)
    for ax in axes:
        ax.set_xticks(features)
        ax.set_xlabel("feature", fontsize=8)
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "diabetes_boxes.png"), dpi=100)
    plt.close(fig)
    return {"model": "simfree_node diabetes (one Euler step)",
            "test_rmse": rmse * target_scale("diabetes"), "tolerance_std": DIABETES_TOLERANCE,
            **summary(regions, seconds, purities, lower, upper)}


def digits_probabilities():
    """The digits classifier of `flowjax.metrics` as images (n, 8, 8, 1) -> class probabilities
    (n, 10)."""
    import jax

    from flowjax.metrics.digits_classifier import load_digits_classifier

    classifier = load_digits_classifier()
    return lambda x: jax.nn.softmax(classifier(x)[1], axis=-1)


def digits(out: str, count: int) -> dict:
    import jax
    import matplotlib.pyplot as plt

    from flowjax.data.images import load_digits

    probabilities = digits_probabilities()

    def model(x):  # (n, 64) -> (n, 10) class probabilities
        return probabilities(x.reshape(-1, 8, 8, 1))

    images, labels = load_digits("test")
    flat = images.reshape(len(images), -1).astype(np.float64)
    lower, upper = -np.ones(64), np.ones(64)
    accuracy = float(np.mean(np.argmax(np.asarray(jax.jit(model)(flat)), -1) == labels))
    regions, surrogates, seconds, purities = explain_points(
        model, flat[:count], lower, upper, scale=0.5, seed=100, max_nodes=DIGITS_MAX_NODES)

    shown = min(count, 4)
    fig, axes = plt.subplots(shown, 3, figsize=(6, 2 * shown))
    for row in range(shown):
        predicted = int(np.argmax(np.asarray(model(flat[row:row + 1]))))
        panels = (flat[row], np.asarray(surrogates[row].weights[:, predicted]),
                  regions[row].upper - regions[row].lower)
        titles = ("digit", f"LIME weights, class {predicted}", "box width per pixel")
        weight_scale = float(np.abs(panels[1]).max()) or 1.0
        scales = (dict(cmap="gray"), dict(cmap="RdBu_r", vmin=-weight_scale, vmax=weight_scale),
                  dict(cmap="viridis", vmin=0.0, vmax=2.0))  # widths within [-1, 1]: 0 to 2
        for ax, panel, title, scale in zip(axes[row], panels, titles, scales):
            image = ax.imshow(panel.reshape(8, 8), **scale)
            if title != "digit":
                fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04).ax.tick_params(labelsize=6)
            ax.set_title(title, fontsize=8)
            ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "digits_boxes.png"), dpi=100)
    plt.close(fig)
    return {"model": "digits classifier (MLP)", "test_accuracy": accuracy,
            **summary(regions, seconds, purities, lower, upper)}


def explainer_properties(model, x, target, groups, num_groups, *, baseline, scale,
                         infidelity_options, features_per_step, sigma) -> dict:
    """The properties of five explainers and the random control on inputs x (n, ...), `target`
    the explained output per example (None for a scalar model), `groups` (n,) the subgroups of
    the homogeneity gap; `baseline` is the removed value, `scale` LIME's perturbation std and
    `sigma` SmoothGrad's."""
    from functools import partial

    import jax

    from flowjax import explain

    def random_attributions(model, x, key):  # the control: no information about the model
        return jax.random.normal(key, x.shape, x.dtype)

    explainers = {
        "gradient": partial(explain.vanilla_gradient, target=target),
        "gradient x input": partial(explain.gradient_x_input, target=target),
        "integrated gradients": partial(explain.integrated_gradients, baseline=baseline,
                                        steps=64, target=target),
        "SmoothGrad": partial(explain.smoothgrad, sigma=sigma, samples=50, target=target),
        "LIME": explain.lime_explainer(target=target, num_samples=500, scale=scale),
        "random (control)": random_attributions,
    }
    rows = {}
    for name, explainer in explainers.items():
        start = time.perf_counter()
        k = jax.random.split(jax.random.key(7), 4)
        phi = jax.block_until_ready(jax.jit(lambda key: explainer(model, x, key))(k[0]))
        infd = jax.block_until_ready(jax.jit(lambda key: explain.infidelity(
            model, explainer, x, key, target=target, **infidelity_options))(k[1]))
        values = {"infidelity": infd}
        for kind, curve in (("deletion", explain.deletion_curve),
                            ("insertion", explain.insertion_curve)):
            values[kind] = np.asarray(jax.jit(lambda key: curve(
                model, explainer, x, key, baseline=baseline, features_per_step=features_per_step,
                target=target).area())(k[0]))
        for kind, metric in (("max_sensitivity", explain.max_sensitivity),
                             ("local_lipschitz", explain.local_lipschitz)):
            values[kind] = np.asarray(jax.jit(lambda key: metric(
                model, explainer, x, key, radius=0.1))(k[2 if kind[0] == "m" else 3]))
        values["gini"] = explain.gini_sparsity(phi)
        values["entropy"] = explain.attribution_entropy(phi)
        values["group_gap"] = explain.group_gap(infd, groups, num_groups)[1]
        rows[name] = {key: float(np.mean(v)) for key, v in jax.device_get(values).items()}
        rows[name]["seconds"] = time.perf_counter() - start
        print(name, rows[name], flush=True)
    return rows


def properties(workdir: str, count: int = 64) -> dict:
    import jax.numpy as jnp

    from flowjax.data.images import load_digits
    from flowjax.data.tabular import tabular_arrays

    model = digits_probabilities()
    images, labels = load_digits("test")
    x = jnp.asarray(images[:count], jnp.float32)
    digits_rows = explainer_properties(
        model, x, jnp.argmax(model(x), axis=-1), jnp.asarray(labels[:count]), 10,
        baseline=-1.0, scale=0.5, sigma=0.15, features_per_step=4,
        infidelity_options=dict(perturbation="square", samples=64, square_size=2, baseline=-1.0))

    node = trained_node("diabetes", os.path.join(workdir, "diabetes"))
    x_test, _ = tabular_arrays("diabetes", "test")
    sex = (x_test[:, 1] > 0).astype(np.int32)  # feature 1 is sex, standardised: two values
    diabetes_rows = explainer_properties(
        lambda z: node(z)[:, 0], jnp.asarray(x_test), None, jnp.asarray(sex), 2,
        baseline=0.0, scale=0.1, sigma=0.1, features_per_step=1,
        infidelity_options=dict(perturbation="gaussian", samples=64, sigma=0.1))
    return {"digits": {"model": "digits classifier (MLP)", "examples": count,
                       "groups": "digit class", "explainers": digits_rows},
            "diabetes": {"model": "simfree_node diabetes (one Euler step)",
                         "examples": len(x_test), "groups": "sex",
                         "explainers": diabetes_rows}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="where the two NODEs are trained")
    parser.add_argument("--out", default=os.path.join(REPO, "experiments", "explain", "results"))
    parser.add_argument("--points", type=int, default=20,
                        help="explained two-moons points and diabetes patients")
    parser.add_argument("--digit-points", type=int, default=20, help="explained digits")
    parser.add_argument("--parts", default="properties,moons,diabetes,digits",
                        help="comma-separated parts to run; the others' results are kept")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "results.json")
    results = {"rho": RHO, "delta": DELTA}
    if os.path.exists(path):
        with open(path) as f:
            results = json.load(f)
    parts = {"properties": lambda: properties(args.workdir),
             "moons": lambda: moons(args.workdir, args.out, args.points),
             "diabetes": lambda: diabetes(args.workdir, args.out, args.points),
             "digits": lambda: digits(args.out, args.digit_points)}
    for name in args.parts.split(","):
        if name not in parts:
            parser.error(f"unknown part {name!r}; the parts are {', '.join(parts)}")
    for name in args.parts.split(","):  # the results so far are written after each part
        results[name] = parts[name]()
        with open(path, "w") as f:
            json.dump(results, f, indent=2)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
