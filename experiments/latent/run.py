"""Latent flow matching on a CPU: digits through a small KL autoencoder, with and without the
latent perceptual loss, and the control-leak check of disentangled conditioning.

Parts (`--parts`, in order; each reads what the earlier ones wrote under `--workdir`):

  autoencoder  trains `configs/lpl/digits.py:autoencoder` and exports it as a diffusers
               checkpoint with its measured scaling factor (`--mode=export`); reports its
               held-out reconstruction error and the digits distance of reconstructions.
  encode       writes the train and test digits' latents (posterior means times the scaling
               factor) as ArrayRecord stores (`flowjax.data.write_latents`).
  lpl          trains `configs/lpl/digits.py` and its "baseline" (the same run without LPL) on
               the latents (and, with `--lpl-weights`, runs with other LPL weights), then for
               each: the decoder-feature error of the one-step data
               estimate on the held-out latents at t = 0.8, 0.9, 0.95 (the LPL value, the same
               noise for all), and the digits distance of 1,000 decoded samples (guided,
               random classes; the mean over three sampling seeds); with `--seeds`, every run
               again from other training seeds; a grid of decoded samples of each.
  leak         trains `configs/conditioning/digits.py` (disentangled) and its "adaln" variant
               (shared adaLN) on flipped digits with the flip as control metadata, then draws
               `--leak-samples` digits per model from one noise and label set twice, with the
               flip set to 0 and to 1; the flipped ones are flipped back and both are classified
               by the digits classifier: the fraction of samples whose class follows the label
               and the fraction whose class does not change with the flip.
  captions     text conditioning end to end: every training digit gets a synthetic caption
               (`digit_captions`: 2-5 token embeddings of a fixed random vocabulary, the class
               word at a random place among filler words) stored with
               `flowjax.data.save_text_embeddings`; the disentangled DiT of
               `configs/conditioning/digits.py`, without labels or flips, reads the captions as
               attention tokens (noisy replicate padding, caption dropout 0.1) and draws
               `--leak-samples` digits from prompts of known class (`sample.context_path`),
               unguided and guided; the fraction the digits classifier assigns to the prompt's
               class (chance: 10%).

Writes results.json and three grids to `--out`: autoencoder.png (test digits and their
reconstructions, alternating), lpl_samples.png (decoded samples, two rows of 16 per run: baseline first)
leak_samples.png (classes 0-7 in each row: disentangled with flip 0, with flip 1, then the
shared adaLN model the same way; flipped samples shown as drawn) and caption_samples.png
(prompt classes 0-9 in a row, unguided then guided).

    nice -n 10 python experiments/latent/run.py --workdir=/tmp/latent_runs
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from flowjax import data, losses, metrics
from flowjax.models import load_autoencoder_kl
from flowjax.train import build_objective, load_config_file, sample, train
from flowjax.train.inference import export_autoencoder
from flowjax.train.trained import load_trained_flow

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PARTS = ("autoencoder", "encode", "lpl", "leak", "captions")
CAPTION_TOKENS, CAPTION_WIDTH = 6, 16  # M, D of the synthetic captions
CAPTION_WORDS = 10 + 6  # one word per class and six filler words
FEATURE_TIMES = (0.8, 0.9, 0.95)
SAMPLE_SEEDS = (0, 1, 2)  # each run's digits distance: the mean over three sample draws


def config(path: str, variant: str | None):
    return load_config_file(os.path.join(REPO, path), variant)


def real_digits(split: str) -> np.ndarray:
    return data.load_digits(split)[0]


def part_autoencoder(workdir: str, results: dict, out: str, steps: int | None) -> None:
    cfg = config("configs/lpl/digits.py", "autoencoder")
    if steps:
        cfg.train.num_steps = steps
    run_dir = os.path.join(workdir, "autoencoder_run")
    start = time.perf_counter()
    train(cfg, run_dir)
    exported = export_autoencoder(cfg, run_dir)
    autoencoder = load_autoencoder_kl(exported["files"]["autoencoder"])
    test = real_digits("test")
    recon = np.asarray(jax.jit(lambda x: autoencoder.decode(autoencoder.encode(x)[0]))(test))
    results["autoencoder"] = {
        **{k: round(v, 5) for k, v in exported["metrics"].items() if isinstance(v, float)},
        "steps": cfg.train.num_steps,
        "digits_distance_reconstructions_vs_train": metrics.digits_frechet_distance(
            recon, real_digits("train")),
        "digits_distance_real_test_vs_train": metrics.digits_frechet_distance(
            test, real_digits("train")),
        "seconds": round(time.perf_counter() - start, 1),
    }
    pairs = np.stack([test[:32], np.clip(recon[:32], -1, 1)], axis=1).reshape(64, 8, 8, 1)
    data.save_image_grid(os.path.join(out, "autoencoder.png"), pairs, scale=4)


def autoencoder_dir(workdir: str) -> str:
    return os.path.join(workdir, "autoencoder_run", "autoencoder")


def store_prefix(workdir: str, split: str) -> str:
    return os.path.join(workdir, "latents", split)


def part_encode(workdir: str, results: dict) -> None:
    autoencoder = load_autoencoder_kl(autoencoder_dir(workdir))
    encode = jax.jit(autoencoder.encode)
    for split in ("train", "test"):
        images, labels = data.load_digits(split)
        reader = data.sources.ArrayReader(images, labels)
        start = time.perf_counter()
        data.write_latents(encode, reader, store_prefix(workdir, split),
                           scaling_factor=autoencoder.config.scaling_factor, batch_size=128,
                           process_index=0, process_count=1)
        results.setdefault("encode", {})[split] = {
            "images": len(images), "seconds": round(time.perf_counter() - start, 2)}


def latent_config(workdir: str, variant: str | None, steps: int | None):
    cfg = config("configs/lpl/digits.py", variant)
    cfg.data.path = data.latents_glob(store_prefix(workdir, "train"))
    cfg.evaluate.autoencoder = autoencoder_dir(workdir)  # decoded sample grids
    if cfg.loss.lpl_weight > 0:
        cfg.loss.lpl_autoencoder = autoencoder_dir(workdir)
    if steps:
        cfg.train.num_steps = steps
    return cfg


def feature_errors(cfg, run_dir: str, autoencoder, scale: float) -> dict[str, float]:
    """Held-out LPL values (and latent MSE) of the one-step estimate at FEATURE_TIMES."""
    flow = load_trained_flow(cfg, run_dir)
    model = nnx.merge(flow.run.graphdef, flow.state.ema_params, flow.state.model_state)
    net = model.net if hasattr(model, "net") else model
    path = flow.run.objective.path
    test = data.sources.ArrayRecordReader(
        sorted(glob.glob(data.latents_glob(store_prefix(os.path.dirname(run_dir), "test")))))
    batch = test.read(np.arange(len(test)))
    z1, labels = jnp.asarray(batch["x"]), jnp.asarray(batch["label"])
    x0 = jax.random.normal(jax.random.key(7), z1.shape)
    out = {}
    for t_value in FEATURE_TIMES:
        t = jnp.full((z1.shape[0],), t_value)
        x_t = path.sample(x0, z1, t).x_t
        z_hat = losses.clean_estimate(path, "velocity", net(x_t, t, label=labels), x_t, t)
        lpl = losses.lpl_loss(autoencoder.decoder_features, z_hat / scale, z1 / scale, t,
                              t_min=0.0)
        out[f"lpl_t{t_value}"] = float(jnp.mean(lpl))
        out[f"latent_mse_t{t_value}"] = float(jnp.mean((z_hat - z1) ** 2))
    return out


def part_lpl(workdir: str, results: dict, out: str, steps: int | None,
             weights: list[float], seeds: list[int]) -> None:
    autoencoder = load_autoencoder_kl(autoencoder_dir(workdir))
    scale = autoencoder.config.scaling_factor
    decode = jax.jit(autoencoder.images)
    previous, grids, results["lpl"] = results.get("lpl", {}), [], {}
    runs = [("baseline", "baseline", 0.0)] + [
        ("lpl" if w == 1.0 else f"lpl_w{w:g}", None, w) for w in weights]
    for base_name, variant, weight in runs:
        for seed in seeds:
            name = base_name if seed == 0 else f"{base_name}_seed{seed}"
            cfg = latent_config(workdir, variant, steps)
            cfg.seed = seed
            if weight:
                cfg.loss.lpl_weight = weight
            run_dir = os.path.join(workdir, f"latent_{name}")
            resumed = os.path.isdir(os.path.join(run_dir, "checkpoints"))
            start = time.perf_counter()
            train(cfg, run_dir)
            seconds = time.perf_counter() - start
            if resumed:  # trained by an earlier invocation: keep its training time
                seconds = previous.get(name, {}).get("train_seconds", float("nan"))
            distances = []
            for sample_seed in SAMPLE_SEEDS:
                cfg.sample.seed = sample_seed
                latents = sample(cfg, run_dir)["samples"]
                images = np.clip(data.decode_in_batches(decode, latents, 500), -1, 1)
                distances.append(metrics.digits_frechet_distance(images, real_digits("train")))
            results["lpl"][name] = {
                "lpl_weight": weight,
                "seed": seed,
                "steps": cfg.train.num_steps,
                "train_seconds": round(seconds, 1),
                "digits_distance_decoded_samples": float(np.mean(distances)),
                "digits_distance_per_sampling_seed": distances,
                **feature_errors(cfg, run_dir, autoencoder, scale),
            }
            if seed == seeds[0]:
                grids.append(images[:32])
    data.save_image_grid(os.path.join(out, "lpl_samples.png"), np.concatenate(grids), columns=16,
                         scale=4)


def part_leak(workdir: str, results: dict, out: str, steps: int | None, num: int) -> None:
    results["leak"], grids = {}, []
    for name, variant in (("disentangled", None), ("shared_adaln", "adaln")):
        cfg = config("configs/conditioning/digits.py", variant)
        if steps:
            cfg.train.num_steps = steps
        run_dir = os.path.join(workdir, f"leak_{name}")
        train(cfg, run_dir)
        cfg.sample.num_samples = num
        labels = build_objective(cfg).source_batch(num, cfg.sample.seed)["label"]
        draws = {}
        for flip in (0.0, 1.0):
            cfg.sample.control = (flip,)
            draws[flip] = np.clip(sample(cfg, run_dir)["samples"], -1, 1)
        unflipped = draws[1.0][:, :, ::-1, :]
        plain, back = metrics.digits_classes(draws[0.0]), metrics.digits_classes(unflipped)
        results["leak"][name] = {
            "steps": cfg.train.num_steps,
            "samples": num,
            "label_accuracy_flip0": float(np.mean(plain == labels)),
            "label_accuracy_flip1_unflipped": float(np.mean(back == labels)),
            "class_unchanged_by_flip": float(np.mean(plain == back)),
            "digits_distance_flip0": metrics.digits_frechet_distance(draws[0.0], real_digits("train")),
            "digits_distance_flip1_unflipped": metrics.digits_frechet_distance(
                unflipped, real_digits("train")),
        }
        present = [c for c in range(10) if np.any(labels == c)][:8]  # classes 0-7 if drawn
        first = [int(np.flatnonzero(labels == c)[0]) for c in present]
        grids += [draws[0.0][first], draws[1.0][first]]
    data.save_image_grid(os.path.join(out, "leak_samples.png"), np.concatenate(grids), columns=8,
                         scale=4)


def digit_captions(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Captions (n, M, D) and lengths (n,) of digits of class `labels`: n_i ~ U{2..5} token
    embeddings of a fixed vocabulary (N(0, 1) rows, drawn once), the word of the class at a
    random position among random filler words; the padding is junk the trainer replaces."""
    vocabulary = np.random.default_rng(12345).standard_normal((CAPTION_WORDS, CAPTION_WIDTH))
    rng = np.random.default_rng(seed)
    n = len(labels)
    lengths = rng.integers(2, 6, size=n)
    words = rng.integers(10, CAPTION_WORDS, size=(n, CAPTION_TOKENS))
    words[np.arange(n), rng.integers(0, lengths)] = labels
    context = vocabulary[words].astype(np.float32)
    context[np.arange(CAPTION_TOKENS)[None, :] >= lengths[:, None]] = 9.0
    return context, lengths


def part_captions(workdir: str, results: dict, out: str, steps: int | None, num: int) -> None:
    images, labels = data.load_digits("train")
    folder = os.path.join(workdir, "captions")
    os.makedirs(folder, exist_ok=True)
    np.savez(os.path.join(folder, "digits.npz"), x=images)  # no labels: the caption is all
    train_captions = data.save_text_embeddings(os.path.join(folder, "train"),
                                               *digit_captions(labels, seed=0))
    prompt_classes = np.arange(num) % 10
    prompts = data.save_text_embeddings(os.path.join(folder, "prompts"),
                                        *digit_captions(prompt_classes, seed=1))
    cfg = config("configs/conditioning/digits.py", None)
    cfg.data = dict(source="arrays", path=os.path.join(folder, "digits.npz"),
                    context_path=train_captions)
    cfg.evaluate.data = dict(shuffle=False)
    cfg.model.update(control_dim=0, context_dim=CAPTION_WIDTH)
    cfg.loss.update(label_dropout=0.0, control_dropout=0.0, context_dropout=0.1)
    cfg.sample.update(control=(), context_path=prompts, num_samples=num)
    if steps:
        cfg.train.num_steps = steps
    run_dir = os.path.join(workdir, "captions_run")
    train(cfg, run_dir)
    results["captions"], rows = {"steps": cfg.train.num_steps, "samples": num}, []
    for guidance_scale in (0.0, 1.0):
        cfg.sample.guidance_scale = guidance_scale
        drawn = np.clip(sample(cfg, run_dir)["samples"], -1, 1)
        classes = metrics.digits_classes(drawn)
        results["captions"][f"prompt_class_followed_w{guidance_scale:g}"] = float(
            np.mean(classes == prompt_classes))
        results["captions"][f"digits_distance_w{guidance_scale:g}"] = (
            metrics.digits_frechet_distance(drawn, real_digits("train")))
        rows.append(drawn[:10])
    data.save_image_grid(os.path.join(out, "caption_samples.png"), np.concatenate(rows),
                         columns=10, scale=4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--steps", type=int, default=None, help="train.num_steps of every run")
    parser.add_argument("--leak-samples", type=int, default=1000)
    parser.add_argument("--lpl-weights", type=float, nargs="+", default=[1.0],
                        help="LPL weights of the lpl part (each its own run; 1: the paper's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="training seeds of every run of the lpl part")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    results_file = os.path.join(args.out, "results.json")
    results = json.load(open(results_file)) if os.path.exists(results_file) else {}
    results["load_average_at_start"] = os.getloadavg()[0]
    for part in args.parts:
        start = time.perf_counter()
        if part == "autoencoder":
            part_autoencoder(args.workdir, results, args.out, args.steps)
        elif part == "encode":
            part_encode(args.workdir, results)
        elif part == "lpl":
            part_lpl(args.workdir, results, args.out, args.steps, args.lpl_weights, args.seeds)
        elif part == "leak":
            part_leak(args.workdir, results, args.out, args.steps, args.leak_samples)
        else:
            part_captions(args.workdir, results, args.out, args.steps, args.leak_samples)
        print(f"{part}: {time.perf_counter() - start:.0f} s", flush=True)
        with open(results_file, "w") as f:
            json.dump(results, f, indent=1)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
