"""SetVAE (Kim et al., 2021) on a CPU: prior samples of synthetic point clouds of three known
families (sphere, cube and torus surfaces of random sizes, `configs/setvae/shapes.py`).

1. Trains the config with the shared trainer and records its speed (sets per second, the
   median over the logging windows after the first, which holds the compilation).
2. `--mode=evaluate` of the trainer: the reconstruction Chamfer distance and KL of held-out
   sets, and MMD / COV / 1-NNA of prior samples against as many held-out sets (Chamfer and
   exact EMD). For scale, the same metrics of a second held-out draw against the first (the
   best a model can do at this sample size: 1-NNA near 50%) and of spheres alone against the
   held-out mixture (a collapsed model).
3. The family check: a classifier of the three families (logistic regression on scale-free
   features: the histogram of the points' distances to their centroid over the mean distance)
   is fit on training sets and scored on held-out ones, then labels the prior samples; the
   table reports its held-out accuracy, the share of samples it labels with probability
   > 0.9 and the share of each family among the samples (a third each in the data).
4. A picture of samples next to data: <out>/samples.png.

Writes <out>/results.json and <out>/results.md.

    nice -n 10 python experiments/setvae/run.py --workdir=/tmp/setvae_shapes --out=experiments/setvae/results
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAMILIES = ("sphere", "cube", "torus")
BINS = np.linspace(0.0, 2.5, 26)


def family_features(sets: np.ndarray) -> np.ndarray:
    """(n, N, 3) -> (n, 25): the histogram of each point's distance to the set's centroid,
    in units of the mean distance (so that the scale of a shape does not matter)."""
    radii = np.linalg.norm(sets - sets.mean(axis=1, keepdims=True), axis=-1)
    radii = radii / radii.mean(axis=1, keepdims=True)
    return np.stack([np.histogram(r, BINS)[0] / r.size for r in radii])


def read_sets(config, split: str, num: int, seed: int) -> dict[str, np.ndarray]:
    from flowjax import data

    spec = {**config.data.to_dict(), "split": split, "shuffle": True}
    return next(data.build_dataset(spec, global_batch_size=num, seed=seed))


def plot(path: str, samples: np.ndarray, reference: np.ndarray, count: int = 8) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(2 * count, 4.2))
    for row, (sets, name) in enumerate(((reference, "data"), (samples, "SetVAE"))):
        for i in range(count):
            ax = fig.add_subplot(2, count, row * count + i + 1, projection="3d")
            ax.scatter(*sets[i].T, s=2, c=sets[i][:, 2], cmap="viridis")
            ax.set_axis_off()
            if i == 0:
                ax.set_title(name, loc="left")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--out", default=os.path.join(REPO, "experiments", "setvae", "results"))
    parser.add_argument("--variant", default=None, help="config variant (smoke for a check)")
    args = parser.parse_args()

    from sklearn.linear_model import LogisticRegression

    from flowjax import metrics
    from flowjax.train import inference, load_config_file, train

    config = load_config_file(os.path.join(REPO, "configs", "setvae", "shapes.py"), args.variant)
    config.evaluate.after_training = False
    os.makedirs(args.out, exist_ok=True)
    start = time.perf_counter()
    train(config, args.workdir)
    train_seconds = time.perf_counter() - start
    with open(os.path.join(args.workdir, "metrics.jsonl")) as f:
        logs = [json.loads(line) for line in f]
    speeds = [r["steps_per_second"] for r in logs if "steps_per_second" in r]
    evaluation = inference.evaluate(config, args.workdir)["metrics"]
    samples = inference.sample(config, args.workdir)["samples"]

    n = config.evaluate.num_samples
    heldout = read_sets(config, "test", n, config.evaluate.seed)["x"]
    second = read_sets(config, "test", n, config.evaluate.seed + 1)["x"]
    distances = tuple(config.evaluate.set_distances)
    kwargs = dict(distances=distances, batch_size=config.evaluate.set_batch_size)
    data_vs_data = metrics.point_cloud_metrics(second, heldout, **kwargs)
    train_sets = read_sets(config, "train", 600, 0)
    spheres = train_sets["x"][train_sets["label"] == 0][:n]
    spheres_vs_data = metrics.point_cloud_metrics(spheres, heldout[: len(spheres)], **kwargs)

    classifier = LogisticRegression(max_iter=2000).fit(family_features(train_sets["x"]),
                                                       train_sets["label"])
    test_sets = read_sets(config, "test", 300, 1)
    accuracy = classifier.score(family_features(test_sets["x"]), test_sets["label"])
    probs = classifier.predict_proba(family_features(samples))
    shares = np.bincount(probs.argmax(axis=1), minlength=3) / len(probs)
    record = {
        "config": "configs/setvae/shapes.py" + (f":{args.variant}" if args.variant else ""),
        "num_steps": config.train.num_steps,
        "batch_size": config.train.global_batch_size,
        "points_per_set": config.data.num_points,
        "train_seconds": train_seconds,
        "sets_per_second": float(np.median(speeds[1:] or speeds))
        * config.train.global_batch_size,
        "final_loss": logs[-1].get("loss"),
        "evaluation": evaluation,
        "heldout_vs_heldout": data_vs_data,
        "spheres_vs_heldout": spheres_vs_data,
        "classifier_heldout_accuracy": float(accuracy),
        "samples_labelled_confidently": float(np.mean(probs.max(axis=1) > 0.9)),
        "sample_family_shares": dict(zip(FAMILIES, map(float, shares))),
    }
    plot(os.path.join(args.out, "samples.png"), samples, heldout)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(record, f, indent=2)
    rows = [("SetVAE prior samples", evaluation), ("held-out draw (data)", data_vs_data),
            ("spheres only (collapsed)", spheres_vs_data)]
    names = [f"{m}_{d}" for d in ("cd", "emd") if ("chamfer" if d == "cd" else d) in distances
             for m in ("mmd", "cov", "1nna")]
    lines = ["| against held-out sets | " + " | ".join(names) + " |",
             "|---" * (len(names) + 1) + "|"]
    for label, values in rows:
        lines.append(f"| {label} | " + " | ".join(f"{values[k]:.4g}" for k in names) + " |")
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
