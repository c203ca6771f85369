"""Latent flow matching: the KL autoencoder's encoding and decoding images/s next to diffusers'
(the same weights, the same images), and training images/s of a DiT on latents with and without
the latent perceptual loss (LPL), its extra cost set against the decoder's FLOPs.

On the machinery of `harness.py` (machine, load, matmul yardstick, results JSON).

- encode / decode: `flowjax.models.AutoencoderKL` of Stable Diffusion's VAE design (channels
  128, 256, 512, 512, two residual blocks per level, f = 8, 4 latent channels; random weights,
  which do not change the speed) under `jax.jit`: `encode` (posterior mean and log-variance) of
  `--batch` images of side `--image-size`, and `decode` of their latents. The peer: diffusers'
  `AutoencoderKL` (PyTorch) loaded from the same weights, written by
  `flowjax.models.convert_autoencoder.save_autoencoder_kl`, `encode(x).latent_dist.mean` and
  `decode(z).sample` under `torch.no_grad`; its outputs are compared with flowjax's. The peer
  runs first, in its own process (`--peer-python`: an interpreter with torch and diffusers;
  `--no-peer` skips it).
- train: the trainer's compiled update (`flowjax.train.step.compile_train_step`: CFM loss, AdamW,
  EMA) of `configs/lpl/imagenet256.py` with a DiT of size `--dit` on latents of side
  image_size / 8 and `--train-batch` examples: "baseline" (no LPL), "lpl" (decoder features of
  every example: loss.lpl_fraction = 1) and "lpl_quarter" (the quarter of largest t, the
  config's setting). The extra FLOPs of LPL (XLA's count of the update minus the baseline's) are
  compared with the decoder-feature pass's own count on the examples it reads: the estimate's
  features forward and backward, the target's forward (about 4 forward passes).

FLOPs are XLA's (`compiled.cost_analysis()`), always counted for the CPU (on a GPU XLA's count
leaves out the convolutions it hands to cuDNN: there the training part reports no FLOPs); MFU is achieved FLOP/s over the measured matmul
peak. Each timing: one untimed call after compiling, then `--reps` calls, median.

    .venv/bin/python experiments/benchmarks/latent.py --peer-python /path/to/torch-venv/bin/python
    python experiments/benchmarks/latent.py --no-peer --image-size 256 --batch 32 --dit XL \\
        --train-batch 32                                                      # a GPU
    .venv/bin/python experiments/benchmarks/latent.py --parts train --dit XL --image-size 256 \\
        --train-batch 4 --flops-only --tag cpu_xl256_flops   # the paper's model, FLOPs only

Results: experiments/benchmarks/results/latent_<platform>.json (`--tag`, `--out`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
import harness  # noqa: E402

SD_VAE = dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
              norm_num_groups=32)


# ----------------------------------------------------------------------------------------------
# The peer (PyTorch, diffusers): imports neither jax nor flowjax.


def peer_main(exchange: Path) -> None:
    import torch
    from diffusers import AutoencoderKL

    spec, inputs = harness.read_exchange(exchange)
    torch.manual_seed(0)
    vae = AutoencoderKL.from_pretrained(spec["checkpoint"]).eval()
    images = torch.from_numpy(inputs["images"]).permute(0, 3, 1, 2).contiguous()
    latents = torch.from_numpy(inputs["latents"]).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        encode = lambda: vae.encode(images).latent_dist.mean  # noqa: E731
        decode = lambda: vae.decode(latents).sample  # noqa: E731
        record = {"torch": torch.__version__, "threads": torch.get_num_threads()}
        outputs = {}
        for name, call in (("encode", encode), ("decode", decode)):
            times, out = harness.time_calls(call, lambda x: x, spec["reps"], 1)
            record[name] = harness.median_and_times(times)
            outputs[name] = {"output": out.permute(0, 2, 3, 1).numpy()}
    harness.write_exchange(exchange, record, outputs)


def run_peer(python: str, checkpoint: str, images, latents, reps: int):
    with tempfile.TemporaryDirectory(prefix="latent_peer_") as tmp:
        exchange = Path(tmp)
        (exchange / harness.SPEC_FILE).write_text(json.dumps({"checkpoint": checkpoint,
                                                              "reps": reps}))
        np.savez(exchange / harness.INPUTS_FILE, images=images, latents=latents)
        subprocess.run([python, str(Path(__file__).resolve()), "--peer", "--exchange",
                        str(exchange)], check=True)
        record = json.loads((exchange / harness.PEER_FILE).read_text())
        with np.load(exchange / harness.PEER_OUTPUTS_FILE) as data:
            outputs = {key.split("/")[0]: data[key] for key in data.files}
    return record, outputs


# ----------------------------------------------------------------------------------------------
# flowjax


def cpu_flops(fn, *args) -> float:
    """XLA's FLOP count of jit(fn)(*args) compiled for the CPU (whose count includes the
    convolutions; the GPU backend's leaves out those it hands to cuDNN)."""
    import jax

    cpu = jax.devices("cpu")[0]
    return harness.flops_of(jax.jit(fn).lower(*jax.device_put(args, cpu)).compile())


def autoencoder_part(args, checkpoint: str, images, latents, peak) -> dict[str, Any]:
    import jax

    from flowjax.models import load_autoencoder_kl

    autoencoder = load_autoencoder_kl(checkpoint)
    from flax import nnx

    graphdef, state = nnx.split(autoencoder)
    encode = jax.jit(lambda s, x: nnx.merge(graphdef, s).encode(x)[0])
    decode = jax.jit(lambda s, z: nnx.merge(graphdef, s).decode(z))
    result, outputs = {}, {}
    for name, fn, x in (("encode", encode, images), ("decode", decode, latents)):
        compiled = fn.lower(state, x).compile()
        times, out = harness.time_calls(lambda: compiled(state, x), jax.block_until_ready,
                                        args.reps, 1)
        timing = harness.median_and_times(times)
        flops = cpu_flops(fn, state, x)
        result[name] = {
            "images_per_s": len(x) / timing["median_s"],
            "flops_per_image": flops / len(x),
            "mfu": harness.mfu(harness.gflops(flops, timing["median_s"]), peak["gflops"]),
            **timing,
        }
        outputs[name] = np.asarray(out)
    return result, outputs


def train_part(args, checkpoint: str, peak) -> dict[str, Any]:
    import jax

    from flowjax import parallel
    from flowjax.models import load_autoencoder_kl
    from flowjax.train import load_config_file, optim, registry, state as state_lib, step
    from flowjax.train.checkpoint import abstract_with_shardings
    from flowjax.train.objectives import DataSpec, build_objective

    side = args.image_size // 8
    on_cpu = jax.devices()[0].platform == "cpu"
    autoencoder = load_autoencoder_kl(checkpoint)
    spec = DataSpec(event_shape=(side, side, 4), num_classes=1000, vocab_size=None, toy=None)
    rng = np.random.default_rng(0)
    batch = {"x": (0.5 * rng.standard_normal((args.train_batch, side, side, 4))).astype(np.float32),
             "label": rng.integers(0, 1000, args.train_batch).astype(np.int32)}
    results = {}
    for name, lpl_fraction in (("baseline", None), ("lpl", 1.0), ("lpl_quarter", 0.25)):
        variant = "baseline" if lpl_fraction is None else None
        config = load_config_file(harness.REPO_ROOT / "configs" / "lpl" / "imagenet256.py", variant)
        config.model.update(size=args.dit, image_size=side, dtype=args.dtype)
        if lpl_fraction is not None:
            config.loss.update(lpl_autoencoder=checkpoint, lpl_fraction=lpl_fraction)
        objective = build_objective(config, spec)
        build = objective.model_fn(
            lambda rngs: registry.build_model(config.model, spec.event_shape, 1000, rngs))
        schedule = optim.learning_rate_schedule(config.optim, config.train.num_steps)
        optimizer = optim.make_optimizer(config.optim, schedule)
        graphdef, abstract = state_lib.abstract_train_state(build, optimizer, 0)
        config.sharding.mesh_shape = (1, 1, 1)
        mesh = jax.make_mesh((1, 1, 1), parallel.MESH_AXES,
                             axis_types=(jax.sharding.AxisType.Auto,) * 3,
                             devices=jax.devices()[:1])
        shardings = parallel.state_shardings(abstract, mesh, config.sharding)
        train_step = step.compile_train_step(
            shardings, graphdef=graphdef, objective=objective, optimizer=optimizer,
            schedule=schedule, config=config, mesh=mesh,
        )
        if args.flops_only:  # nothing allocated: DiT-XL's state alone is 11 GB
            train_state = abstract_with_shardings(abstract, shardings)
        else:
            train_state = state_lib.init_train_state(build, optimizer, 0, shardings)
        compiled = train_step.lower(train_state, batch).compile()
        holder = {"state": train_state}

        def update():
            holder["state"], metrics = compiled(holder["state"], batch)
            return metrics["loss"]

        results[name] = {}
        if not args.flops_only:
            times, _ = harness.time_calls(update, jax.block_until_ready, args.reps, 1)
            timing = harness.median_and_times(times)
            results[name] = {"images_per_s": args.train_batch / timing["median_s"], **timing}
        if not on_cpu:  # the GPU's count leaves out the convolutions: no FLOPs, no MFU
            continue
        flops = harness.flops_of(compiled)
        results[name]["flops_per_step"] = flops
        if not args.flops_only:
            results[name]["mfu"] = harness.mfu(harness.gflops(flops, timing["median_s"]),
                                               peak["gflops"])
        if lpl_fraction is not None:
            decoded = max(1, int(np.ceil(lpl_fraction * args.train_batch)))
            features = autoencoder.decoder_features
            z = batch["x"][:decoded]
            forward = harness.flops_of(jax.jit(features).lower(z).compile())
            grad = jax.jit(jax.grad(lambda z: sum((f**2).sum() for f in features(z))))
            backward_and_forward = harness.flops_of(grad.lower(z).compile())
            results[name]["decoded_examples"] = decoded
            results[name]["decoder_feature_forward_flops"] = forward
            results[name]["decoder_feature_pass_flops"] = backward_and_forward + forward
    base = results["baseline"]
    for name in ("lpl", "lpl_quarter"):
        r = results[name]
        if not args.flops_only:
            r["extra_seconds"] = r["median_s"] - base["median_s"]
            r["slowdown"] = r["median_s"] / base["median_s"]
        if on_cpu:
            r["extra_flops"] = r["flops_per_step"] - base["flops_per_step"]
            r["extra_flops_over_decoder_pass"] = r["extra_flops"] / r["decoder_feature_pass_flops"]
    return results


def main(argv=None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4, help="images encoded / decoded per call")
    parser.add_argument("--dit", default="S", help="DiT size of the training part")
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--dtype", default="float32", help="the DiT's compute dtype")
    parser.add_argument("--flops-only", action="store_true",
                        help="train part: compile and count FLOPs on the CPU, no timing")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--matmul-size", type=int, default=2048)
    parser.add_argument("--peer-python", default=None,
                        help="a Python with torch and diffusers (the peer); none: flowjax only")
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--parts", default="autoencoder,train")
    parser.add_argument("--tag", default=None)
    parser.add_argument("--out", default=None)
    parser.add_argument("--peer", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--exchange", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peer:
        peer_main(args.exchange)
        return {}
    if args.image_size % 8:
        raise SystemExit(f"--image-size must be a multiple of 8 (f = 8), got {args.image_size}.")
    parts = args.parts.split(",")
    report = {**harness.report_header("latent"), "machine": harness.describe_machine()}

    import jax
    from flax import nnx

    from flowjax.models.autoencoder import autoencoder_for_images
    from flowjax.models.convert_autoencoder import save_autoencoder_kl

    device = jax.devices()[0]
    report.update(platform=device.platform, device=device.device_kind, jax=jax.__version__)
    rng = np.random.default_rng(0)
    side = args.image_size
    images = rng.uniform(-1, 1, (args.batch, side, side, 3)).astype(np.float32)
    latents = rng.standard_normal((args.batch, side // 8, side // 8, 4)).astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="latent_vae_") as tmp, \
            harness.benchmark_running_flag():
        autoencoder = autoencoder_for_images((side, side, 3), rngs=nnx.Rngs(0), **SD_VAE)
        checkpoint = save_autoencoder_kl(autoencoder, Path(tmp) / "vae")
        peer = None
        if "autoencoder" in parts and args.peer_python and not args.no_peer:
            start = time.perf_counter()
            peer, peer_out = run_peer(args.peer_python, checkpoint, images, latents, args.reps)
            peer["wall_s"] = time.perf_counter() - start
        peak = harness.jax_matmul(args.matmul_size, args.reps)
        report["matmul_peak"] = {"size": args.matmul_size, **peak}
        report["settings"] = {k: v for k, v in vars(args).items() if k not in ("peer", "exchange")}
        if "autoencoder" in parts:
            result, outputs = autoencoder_part(args, checkpoint, images, latents, peak)
            report["autoencoder"] = result
            if peer is not None:
                report["peer"] = peer
                for name in ("encode", "decode"):
                    result[name]["peer_median_s"] = peer[name]["median_s"]
                    result[name]["speedup_vs_diffusers"] = (
                        peer[name]["median_s"] / result[name]["median_s"])
                    result[name]["max_abs_difference"] = float(
                        np.max(np.abs(outputs[name] - peer_out[name])))
        if "train" in parts:
            report["train"] = train_part(args, checkpoint, peak)
    report["load_average_end"] = harness.load_averages()
    lines = []
    for name, r in report.get("autoencoder", {}).items():
        peer_text = (f", diffusers {r['peer_median_s']:.3f} s ({r['speedup_vs_diffusers']:.2f}x), "
                     f"max diff {r['max_abs_difference']:.1e}" if "peer_median_s" in r else "")
        lines.append(f"{name} {args.batch} x {side}^2: {r['images_per_s']:.1f} images/s, "
                     f"MFU {r['mfu']:.1%}{peer_text}")
    for name, r in report.get("train", {}).items():
        extra = f", slowdown {r['slowdown']:.2f}x" if "slowdown" in r else ""
        if "extra_flops_over_decoder_pass" in r:
            extra += f", extra FLOPs / decoder pass {r['extra_flops_over_decoder_pass']:.2f}"
        mfu = f", MFU {r['mfu']:.1%}" if "mfu" in r else ""
        speed = f"{r['images_per_s']:.1f} images/s" if "images_per_s" in r else (
            f"{r['flops_per_step'] / args.train_batch / 1e9:.0f} GFLOP per example")
        lines.append(f"train {name}: {speed}{mfu}{extra}")
    table = "\n".join(lines)
    tag = args.tag or device.platform
    harness.write_results(args.out or harness.results_file("latent", tag), report, table)
    return report


if __name__ == "__main__":
    main()
