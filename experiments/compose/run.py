"""Learning to Compose (Jung et al., ICLR 2024) on a CPU: the composition objective against the
plain auto-encoding baseline on synthetic multi-object scenes (`configs/compose/scenes.py`).

1. Trains `configs/compose/scenes.py` (composition path on) and its `baseline` variant (off)
   with the shared trainer at the same budget: the same steps, seed, data and network. Records
   the training speed of each (scenes per second, the median over the logging windows after
   the first, which holds the compilation).
2. `--mode=evaluate` of the trainer for each: the one-shot and diffusion losses of held-out
   scenes and, against their ground-truth masks, FG-ARI, ARI and Hungarian mIoU of the
   slot-attention masks (the paper's segmentation) and of the decoder's masks.
3. A picture: held-out scenes, the reconstructions and slot-attention segmentations of both
   models, <out>/scenes.png.

Writes <out>/results.json and <out>/results.md.

    nice -n 5 python experiments/compose/run.py --workdir=/tmp/compose_scenes \
        --out=experiments/compose/results
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUNS = (("composition", None), ("baseline", "baseline"))
METRICS = ("fg_ari", "miou", "ari", "fg_ari_decoder", "miou_decoder", "oneshot_mse",
           "diffusion_mse")


def variant(name: str | None, extra: str | None) -> str | None:
    names = [n for n in (name, extra) if n]
    return ",".join(names) or None


def segment_colours(masks: np.ndarray) -> np.ndarray:
    """Soft masks (n, H, W, K) -> an RGB picture of their argmax (n, H, W, 3) in [0, 1]."""
    from matplotlib import colormaps

    ids = np.argmax(masks, axis=-1)
    return colormaps["tab10"](ids % 10)[..., :3]


def plot(path: str, scenes: np.ndarray, true_masks: np.ndarray, outputs: dict, channels: int,
         num_slots: int, count: int = 8) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [("scenes", (scenes[:count] + 1) / 2),
            ("true masks", segment_colours(np.eye(true_masks.max() + 1)[true_masks[:count]]))]
    for name, samples in outputs.items():
        rows.append((f"{name}: reconstruction", (samples[:count, ..., :channels] + 1) / 2))
        rows.append((f"{name}: slot masks", segment_colours(
            samples[:count, ..., channels + num_slots:])))
    fig, axes = plt.subplots(len(rows), count, figsize=(1.2 * count, 1.3 * len(rows)))
    for r, (name, images) in enumerate(rows):
        for i in range(count):
            axes[r, i].imshow(np.clip(images[i], 0, 1), interpolation="nearest")
            axes[r, i].set_axis_off()
        axes[r, 0].set_title(name, loc="left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--out", default=os.path.join(REPO, "experiments", "compose", "results"))
    parser.add_argument("--variant", default=None, help="extra config variant (smoke for a check)")
    parser.add_argument("--steps", type=int, default=None, help="override train.num_steps")
    args = parser.parse_args()

    from flowjax.train import inference, load_config_file, train
    from flowjax.train.objectives import build_objective

    os.makedirs(args.out, exist_ok=True)
    record, outputs = {}, {}
    for name, base in RUNS:
        config = load_config_file(os.path.join(REPO, "configs", "compose", "scenes.py"),
                                  variant(base, args.variant))
        if args.steps:
            config.train.num_steps = args.steps
        config.evaluate.after_training = False
        workdir = os.path.join(args.workdir, name)
        start = time.perf_counter()
        train(config, workdir)
        seconds = time.perf_counter() - start
        with open(os.path.join(workdir, "metrics.jsonl")) as f:
            logs = [json.loads(line) for line in f]
        speeds = [r["steps_per_second"] for r in logs if "steps_per_second" in r]
        evaluation = inference.evaluate(config, workdir)["metrics"]
        outputs[name] = inference.sample(config, workdir)["samples"]
        record[name] = {
            "config": "configs/compose/scenes.py" + (f":{variant(base, args.variant)}"
                                                     if variant(base, args.variant) else ""),
            "num_steps": config.train.num_steps,
            "batch_size": config.train.global_batch_size,
            "train_seconds": seconds,
            "scenes_per_second": float(np.median(speeds[1:] or speeds))
            * config.train.global_batch_size,
            "final_loss": logs[-1].get("loss"),
            "evaluation": evaluation,
        }
    scenes = build_objective(config).source_batch(config.sample.num_samples, config.sample.seed)
    plot(os.path.join(args.out, "scenes.png"), scenes["x"], scenes["mask"], outputs,
         scenes["x"].shape[-1], config.model.num_slots)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(record, f, indent=2)
    lines = ["| objective | " + " | ".join(METRICS) + " | scenes/s |",
             "|---" * (len(METRICS) + 2) + "|"]
    for name, values in record.items():
        cells = [f"{values['evaluation'][m]:.3f}" for m in METRICS]
        speed = values["scenes_per_second"]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {speed:.1f} |")
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
