"""MeBT (Yoo et al., CVPR 2023) on a CPU: bouncing digits through the small video tokenizer.

1. Loads a trained tokenizer (`configs/mebt/tokenizer.py`, its work directory given by
   --tokenizer-workdir) and writes the tokens of `--num-videos` training videos of its moving
   digits (`flowjax.models.tokenize_videos`, `flowjax.data.write_video_tokens`).
2. Trains `configs/mebt/moving_digits.py` on that file with the shared trainer (`--steps`
   overrides the config's updates) and records its speed.
3. Draws samples (`--mode=sample` of the trainer: MaskGIT draft, then revision), decodes them
   with the tokenizer, and measures on the decoded videos and on as many real test videos
   (raw, and after the tokenizer's round trip):
     - ink: the mean pixel intensity in [0, 1] (a blank video has 0; the other figures mean
       nothing for a video without a digit);
     - motion: the intensity-weighted centre of mass of each frame; its velocity between
       frames; `speed` the mean |velocity| (pixels per frame, both axes); `speed_change` the
       mean over axes and frames of | |v_{t+1}| - |v_t| | (0 for a digit moving at a constant
       speed and bouncing elastically); `moving` the share of videos whose mean speed is over
       0.5 pixel per frame;
     - identity: a 12 x 12 crop around the centre of mass of each frame, resized to 8 x 8, is
       labelled by the digits classifier (`flowjax.metrics.digits_classes`); `same_class` the
       share of frames whose label is the video's most frequent one, `all_same` the share of
       videos whose frames all agree.
4. A strip picture (<out>/samples.png): the frames of 4 samples above 4 real videos.
5. The same checkpoint drawn with the other sampler settings of `SAMPLERS` (draft only, with
   and without top-k; revision at temperature 1), scored alike: <out>/sampler_settings.json.

Writes <out>/results.json, <out>/results.md and <out>/sampler_settings.json.

    nice -n 5 .venv/bin/python experiments/mebt/run.py --tokenizer-workdir=/tmp/vq_digits \
        --workdir=/tmp/mebt_digits --out=experiments/mebt/results
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLERS = {
    "draft only, top-k 32": dict(revise_rounds=0),
    "revise temperature 1.0": dict(revise_temperature=1.0),
    "draft without top-k": dict(top_k=0, revise_rounds=0),
}
"""Changes to the config's `sample` settings compared on the trained checkpoint (step 5)."""


def load_tokenizer(workdir: str, variant: str | None = None, normalize_codes: bool = False):
    """(config, model with the EMA weights, step) of the tokenizer run in `workdir`, trained
    with `configs/mebt/tokenizer.py:<variant>`; `normalize_codes` for a run trained with the
    l2-normalised lookup (the checkpoint does not tell the config file)."""
    from flax import nnx

    from flowjax.train import inference, load_config_file

    config = load_config_file(os.path.join(REPO, "configs", "mebt", "tokenizer.py"), variant)
    config.model.normalize_codes = normalize_codes
    flow = inference.load_trained_flow(config, workdir)
    model = nnx.merge(flow.run.graphdef, flow.state.ema_params, flow.state.model_state)
    return config, model, flow.step


def digit_videos(config, split: str, num: int, seed: int) -> np.ndarray:
    """Videos (num, T, H, W, 1) in [-1, 1] of the tokenizer's moving digits."""
    from flowjax.data.videos import moving_digits

    d = config.data
    made = moving_digits(seed, num, d.num_frames, canvas=d.canvas, digits=d.digits,
                         sprite_size=d.sprite_size, split=split)
    return made.videos * 2.0 - 1.0


def decode(model, tokens: np.ndarray, batch_size: int = 32) -> np.ndarray:
    import jax
    from flax import nnx

    graphdef, state = nnx.split(model)
    fn = jax.jit(lambda s, t: nnx.merge(graphdef, s).decode_indices(t))
    out = [np.asarray(fn(state, tokens[i:i + batch_size]))
           for i in range(0, len(tokens), batch_size)]
    return np.clip(np.concatenate(out), -1.0, 1.0)


def centres(videos: np.ndarray) -> np.ndarray:
    """Intensity-weighted centre of mass (N, T, 2) (row, col) of frames in [-1, 1]."""
    w = np.clip((videos[..., 0] + 1.0) / 2.0, 0.0, 1.0)
    h, wd = w.shape[-2:]
    total = w.sum(axis=(-2, -1)) + 1e-6
    rows = (w.sum(-1) * np.arange(h)).sum(-1) / total
    cols = (w.sum(-2) * np.arange(wd)).sum(-1) / total
    return np.stack([rows, cols], -1)


def motion_metrics(videos: np.ndarray) -> dict[str, float]:
    velocity = np.diff(centres(videos), axis=1)  # (N, T - 1, 2)
    speed = np.abs(velocity)
    per_video = speed.mean(axis=(1, 2))
    return {
        "ink": float(np.clip((videos + 1.0) / 2.0, 0.0, 1.0).mean()),
        "speed": float(speed.mean()),
        "speed_change": float(np.abs(np.diff(speed, axis=1)).mean()),
        "moving": float(np.mean(per_video > 0.5)),
    }


def identity_metrics(videos: np.ndarray, sprite: int) -> dict[str, float]:
    import jax

    from flowjax.metrics import digits_classes

    n, t, h, w, _ = videos.shape
    c = np.rint(centres(videos) - sprite / 2).astype(int)
    c = np.clip(c, 0, [h - sprite, w - sprite])
    crops = np.stack([[videos[i, j, c[i, j, 0]:c[i, j, 0] + sprite, c[i, j, 1]:c[i, j, 1] + sprite]
                       for j in range(t)] for i in range(n)])
    small = np.asarray(jax.image.resize(crops.reshape(n * t, sprite, sprite, 1),
                                        (n * t, 8, 8, 1), "linear"))
    labels = digits_classes(small).reshape(n, t)
    mode = np.array([np.bincount(row, minlength=10).argmax() for row in labels])
    agree = labels == mode[:, None]
    return {"same_class": float(agree.mean()), "all_same": float(agree.all(axis=1).mean())}


def strip(path: str, rows: list[np.ndarray], names: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = rows[0].shape[0]
    fig, axes = plt.subplots(len(rows), t, figsize=(t * 0.9, len(rows) * 0.95))
    for r, (video, name) in enumerate(zip(rows, names)):
        for j in range(t):
            ax = axes[r, j]
            ax.imshow(video[j, ..., 0], cmap="gray", vmin=-1, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(name, fontsize=7)
    fig.tight_layout(pad=0.1)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokenizer-workdir", required=True)
    parser.add_argument("--tokenizer-variant", default=None,
                        help="the variant of configs/mebt/tokenizer.py it was trained with")
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--out", default=os.path.join(REPO, "experiments", "mebt", "results"))
    parser.add_argument("--num-videos", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=0, help="updates (0: the config's)")
    args = parser.parse_args()

    from flowjax.data import write_video_tokens
    from flowjax.models.vqvae3d import tokenize_videos
    from flowjax.train import inference, load_config_file, train

    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.workdir, exist_ok=True)
    tok_config, tokenizer, tok_step = load_tokenizer(args.tokenizer_workdir, args.tokenizer_variant)
    tokens_path = os.path.join(args.workdir, "tokens.npz")
    start = time.time()
    tokens = tokenize_videos(tokenizer, digit_videos(tok_config, "train", args.num_videos, 0), 64)
    write_video_tokens(tokens_path, tokens, tok_config.model.codebook_size)
    tokenize_s = time.time() - start
    print(f"tokens {tokens.shape} in {tokenize_s:.0f} s -> {tokens_path}", flush=True)

    config = load_config_file(os.path.join(REPO, "configs", "mebt", "moving_digits.py"), None)
    config.data.path = tokens_path
    config.data.codebook_size = tok_config.model.codebook_size
    if args.steps:
        config.train.num_steps = config.checkpoint.every_steps = args.steps
    start = time.time()
    train(config, args.workdir)
    train_s = time.time() - start
    with open(os.path.join(args.workdir, "metrics.jsonl")) as f:
        logged = [json.loads(line) for line in f if line.strip()]
    speeds = [r["steps_per_second"] for r in logged[1:] if "steps_per_second" in r]
    losses = [(r["step"], r["loss"]) for r in logged if "loss" in r]

    sprite = tok_config.data.sprite_size

    def scores(videos: np.ndarray) -> dict[str, float]:
        return {**motion_metrics(videos), **identity_metrics(videos, sprite)}

    drawn = inference.sample(config, args.workdir)
    samples = decode(tokenizer, np.asarray(drawn["samples"], np.int32))
    n = len(samples)
    real = digit_videos(tok_config, "test", n, 1)
    real_tokens = tokenize_videos(tokenizer, real, 64)
    round_trip = decode(tokenizer, real_tokens)
    table = {name: scores(videos) for name, videos in (
        ("MeBT samples", samples), ("real test videos", real),
        ("real, through the tokenizer", round_trip))}
    strip(os.path.join(args.out, "samples.png"), [*samples[:4], *real[:4]],
          [f"sample {i}" for i in range(4)] + [f"real {i}" for i in range(4)])

    result = {
        "tokenizer": {"workdir": args.tokenizer_workdir, "step": tok_step,
                      "videos_tokenized": args.num_videos, "grid": list(tokens.shape[1:]),
                      "codebook_size": tok_config.model.codebook_size, "seconds": tokenize_s},
        "mebt": {"updates": config.train.num_steps, "batch": config.train.global_batch_size,
                 "train_seconds": train_s,
                 "examples_per_s": (config.train.global_batch_size * float(np.median(speeds))
                                    if speeds else None),
                 "first_loss": losses[0] if losses else None,
                 "last_loss": losses[-1] if losses else None,
                 "sample_settings": {k: v for k, v in drawn["metrics"].items()
                                     if k not in ("step", "num_samples")}},
        "num_videos_scored": n,
        "metrics": table,
        "load_average": os.getloadavg(),
        "taken": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(result, f, indent=1, default=str)
    sample_settings = config.sample.to_dict()
    compared = {}
    for name, change in SAMPLERS.items():
        config.sample.update(sample_settings, **change)
        drawn = inference.sample(config, args.workdir)
        compared[name] = scores(decode(tokenizer, np.asarray(drawn["samples"], np.int32)))
        print(name, compared[name], flush=True)
    with open(os.path.join(args.out, "sampler_settings.json"), "w") as f:
        json.dump(compared, f, indent=1)
    lines = ["| videos | ink | speed (px/frame) | speed change | moving | same class | all same |",
             "|---|---|---|---|---|---|---|"]
    for name, m in table.items():
        lines.append(f"| {name} | {m['ink']:.3f} | {m['speed']:.2f} | {m['speed_change']:.2f} | "
                     f"{m['moving']:.2f} | {m['same_class']:.2f} | {m['all_same']:.2f} |")
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
