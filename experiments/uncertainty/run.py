"""Uncertainty Baselines (Nado et al., 2021) on a CPU: every method of
`flowjax.models.uncertainty` on the offline 8x8 digits at the same small budget
(`configs/uncertainty/digits.py`: the small network, batch 64, 1,000 updates, Adam 3e-3 with
a cosine decay).

For each method: trains with the shared trainer (`flowjax.train.train`), predicts the
evaluation inputs (`--mode=sample`: held-out digits, OOD sets, corrupted digits) and evaluates
(`--mode=evaluate`): accuracy, NLL, ECE (15 bins), Brier on the 360 test digits, OOD AUROC of
digits against uniform noise and against inverted digits, and accuracy / NLL / ECE on the seven
synthetic corruptions x five severities (mean over all 35, and per severity). Records the
training time. Writes <out>/results.json, <out>/results.md and <out>/reliability.png (the
reliability diagram of each method's held-out predictions).

    nice -n 10 python experiments/uncertainty/run.py --workdir=/tmp/uncertainty_digits \
        --out=experiments/uncertainty/results [--num_steps=1000] [--methods=sngp,mimo]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLUMNS = ("accuracy", "nll", "ece", "brier", "ood_auroc_uniform_noise", "ood_auroc_inverted",
           "corrupt_accuracy", "corrupt_nll", "corrupt_ece")


def run_method(method: str, workdir: str, num_steps: int) -> dict:
    from flowjax.train import inference, load_config_file, train

    config = load_config_file(os.path.join(REPO, "configs", "uncertainty", "digits.py"), method)
    config.train.num_steps = num_steps
    config.checkpoint.every_steps = num_steps
    config.evaluate.after_training = False
    start = time.perf_counter()
    train(config, workdir)
    seconds = time.perf_counter() - start
    drawn = inference.sample(config, workdir)
    result = inference.evaluate(config, workdir, samples=drawn["samples"])["metrics"]
    groups = np.load(os.path.join(workdir, "samples.npy"))
    reference = load_objective(config).source_batch(config.evaluate.num_samples, 0)
    heldout = reference["group"] == 0
    return {"metrics": result, "train_seconds": seconds,
            "heldout_probs": groups[heldout], "heldout_labels": reference["label"][heldout]}


def load_objective(config):
    from flowjax.train.objectives import build_objective

    return build_objective(config)


def reliability_figure(path: str, predictions: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from flowjax.metrics.calibration import reliability_bins

    fig, axes = plt.subplots(1, len(predictions), figsize=(2.6 * len(predictions), 2.8),
                             sharey=True)
    for ax, (method, (probs, labels)) in zip(np.atleast_1d(axes), predictions.items()):
        counts, acc, conf = (np.asarray(a) for a in reliability_bins(probs, labels))
        centres = (np.arange(len(counts)) + 0.5) / len(counts)
        filled = counts > 0
        ax.bar(centres[filled], acc[filled], width=1 / len(counts), edgecolor="k",
               label="accuracy")
        ax.plot([0, 1], [0, 1], "r--", lw=1)
        ax.set_title(method, fontsize=9)
        ax.set_xlabel("confidence")
    np.atleast_1d(axes)[0].set_ylabel("accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    from flowjax.train.recipes import UNCERTAINTY_METHODS

    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--num_steps", type=int, default=1_000)
    parser.add_argument("--methods", default=",".join(UNCERTAINTY_METHODS))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    results, predictions = {}, {}
    for method in args.methods.split(","):
        out = run_method(method, os.path.join(args.workdir, method), args.num_steps)
        results[method] = {**{k: out["metrics"][k] for k in out["metrics"]},
                           "train_seconds": out["train_seconds"]}
        predictions[method] = (out["heldout_probs"], out["heldout_labels"])
        print(method, {k: round(results[method][k], 4) for k in COLUMNS}, flush=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"num_steps": args.num_steps, "load": os.getloadavg(), "methods": results},
                  f, indent=2)
    lines = ["| method | accuracy | NLL | ECE | Brier | AUROC noise | AUROC inverted | "
             "corrupted acc | corrupted NLL | corrupted ECE | train s |",
             "|---|" + "---|" * 10]
    for method, r in results.items():
        lines.append(f"| {method} | " + " | ".join(f"{r[k]:.3f}" for k in COLUMNS)
                     + f" | {r['train_seconds']:.0f} |")
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    reliability_figure(os.path.join(args.out, "reliability.png"), predictions)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
