"""The moving-digits video tokenizer (`configs/mebt/tokenizer.py`, a 3D VQ autoencoder of the
TATS 3D-VQGAN design, Ge et al., ECCV 2022) measured on held-out videos after training.

Loads the run in --workdir (its EMA weights, as `run.py` does; --variant names the config's
variant it was trained with, e.g. fsq; --normalize-codes for a run trained with
`--config.model.normalize_codes=True`, which the checkpoint does not tell the config file),
encodes `--num-videos` test
videos of its moving digits (seed 1, the real videos of `run.py`'s table) to tokens and decodes
them, and reports:
  - codes: the number of distinct codes among all their tokens, and the perplexity exp(H(p)) of
    the codes' frequencies p (`flowjax.models.vqvae3d.code_perplexity` over all tokens);
    `codes_per_video` the mean number of distinct codes in one video;
  - PSNR: the mean per-video 10 log10(4 / mse) of the round trip in [-1, 1] units
    (`flowjax.train.objectives.video_vq.psnr`), and the mean squared and absolute errors;
  - the ink, motion and identity columns of `run.py` for the real videos and their round trip
    (ink kept: round-trip ink / real ink);
  - speed: seconds per update from the run's metrics.jsonl (median of the logging windows after
    the first, which holds the compilation);
  - the trainer's own evaluation (`--mode=evaluate`, 32 held-out videos: <workdir>/metrics.json)
    when the run wrote one, copied as "trainer_evaluation".
Writes <out> (JSON) and a strip picture (--picture): 4 test videos above their reconstructions.

    nice -n 10 .venv/bin/python experiments/mebt/tokenizer_eval.py --workdir=/tmp/vq_norm \
        --normalize-codes --out=experiments/mebt/results/tokenizer_normalized.json \
        --picture=experiments/mebt/results/tokenizer_normalized_reconstructions.png
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from run import (  # noqa: E402
    decode,
    digit_videos,
    identity_metrics,
    load_tokenizer,
    motion_metrics,
    strip,
)


def seconds_per_update(workdir: str) -> dict[str, float | None]:
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return {"median": None, "windows": []}
    with open(path) as f:
        logged = [json.loads(line) for line in f if line.strip()]
    rates = [r["steps_per_second"] for r in logged if r.get("steps_per_second")]
    windows = [1.0 / r for r in rates[1:]]
    return {"median": float(np.median(windows)) if windows else None, "windows": windows}


def trainer_evaluation(workdir: str) -> dict | None:
    path = os.path.join(workdir, "metrics.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--picture", default="")
    parser.add_argument("--num-videos", type=int, default=64)
    parser.add_argument("--variant", default=None,
                        help="the variant of configs/mebt/tokenizer.py the run used")
    parser.add_argument("--normalize-codes", action="store_true",
                        help="the run used the l2-normalised (cosine) code lookup")
    args = parser.parse_args()

    import jax.numpy as jnp

    from flowjax.models.vqvae3d import code_perplexity, tokenize_videos
    from flowjax.train.objectives.video_vq import psnr

    config, model, step = load_tokenizer(args.workdir, args.variant, args.normalize_codes)
    real = digit_videos(config, "test", args.num_videos, 1)
    tokens = tokenize_videos(model, real, 32)
    round_trip = decode(model, tokens)
    axes = tuple(range(1, real.ndim))
    mse = np.mean(np.square(round_trip - real), axis=axes)
    l1 = np.mean(np.abs(round_trip - real), axis=axes)
    sprite = config.data.sprite_size
    table = {name: {**motion_metrics(v), **identity_metrics(v, sprite)}
             for name, v in (("real test videos", real), ("real, through the tokenizer",
                                                          round_trip))}
    result = {
        "workdir": args.workdir,
        "step": int(step),
        "model": config.model.to_dict(),
        "num_videos": args.num_videos,
        "grid": list(tokens.shape[1:]),
        "codes_used": int(len(np.unique(tokens))),
        "codebook_size": int(config.model.codebook_size),
        "code_perplexity": float(code_perplexity(jnp.asarray(tokens),
                                                 config.model.codebook_size)),
        "codes_per_video": float(np.mean([len(np.unique(t)) for t in tokens])),
        "psnr": float(np.mean(psnr(mse))),
        "reconstruction_mse": float(np.mean(mse)),
        "reconstruction_l1": float(np.mean(l1)),
        "ink_kept": table["real, through the tokenizer"]["ink"] / table["real test videos"]["ink"],
        "metrics": table,
        "seconds_per_update": seconds_per_update(args.workdir),
        "trainer_evaluation": trainer_evaluation(args.workdir),
        "load_average": os.getloadavg(),
        "taken": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1, default=str)
    if args.picture:
        strip(args.picture, [*real[:4], *round_trip[:4]],
              [f"real {i}" for i in range(4)] + [f"recon {i}" for i in range(4)])
    print(json.dumps({k: result[k] for k in ("step", "codes_used", "code_perplexity",
                                             "codes_per_video", "psnr", "ink_kept")}, indent=1))


if __name__ == "__main__":
    main()
