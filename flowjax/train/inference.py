"""Sampling from and evaluating a trained flow: the `sample` and `evaluate` modes of the CLI.

Both read the newest checkpoint in the work directory and use the EMA parameters; what is
solved is the run's objective's (`flowjax.train.objectives`).

- `sample`: runs the objective's sampler from source samples at t = 0 to t = 1 (for continuous
  flow matching, dx/dt = u_t(x) from x_0 ~ N(0, I), Flow Matching Guide, Lipman et al., 2024,
  eq. 3.5; for discrete flows, the CTMC Euler sampler); writes the samples, some whole
  trajectories and, for 2D data, PNG plots (samples, trajectories, and, where the likelihood is
  cheap, the model density on a grid); for images, a grid of samples.
- `evaluate`: the objective's likelihood metrics of held-out points (for continuous flow
  matching the exact log p_1(x_1) = log p_0(x_0) - int_0^1 div u_t(x_t) dt, eq. 3.31; for
  discrete flows the ELBO in bits per token); for toy data, the fraction of samples inside
  the support, the true NLL and the energy distance to the data; for images, FID and Inception
  Score against reference statistics (`evaluate.fid_reference`), and on the offline digits the
  distance in a digits classifier's features (`image_metrics`). Samples of a latent run are
  decoded by `evaluate.autoencoder` first (for the grid too).

- `export_autoencoder`: an autoencoder run ("autoencoder" objective) evaluated, then written
  as a diffusers AutoencoderKL checkpoint with the scaling factor measured on held-out images
  (`flowjax.models.convert_autoencoder.save_autoencoder_kl`), for latent flow matching.

Held-out points come from the data pipeline with `evaluate.seed` (fresh draws for the toys)
and the data settings of `evaluate.data` layered over `config.data` (e.g. a test split).
Every process takes part in the sharded computations; process 0 writes the files.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import numpy as np
from flax import nnx

from flowjax import data, metrics
from flowjax.models.convert_autoencoder import (
    load_autoencoder_kl,
    read_config,
    save_autoencoder_kl,
)
from flowjax.parallel import batch_sharding, global_batch
from flowjax.train import judge, plots
from flowjax.train.config import ConfigError, heldout_data_config
from flowjax.train.logs import Progress, write_images
from flowjax.train.trained import (
    TrainedFlow,
    batch_multiple,
    load_trained_flow,
    map_batches,
    to_host,
)

log = logging.getLogger(__name__)

SAMPLES_FILE = "samples.npy"
TRAJECTORIES_FILE = "trajectories.npy"
SAMPLE_METRICS_FILE = "sample_metrics.json"
EVAL_METRICS_FILE = "metrics.json"
PLOTS_DIR = "plots"
TRAJECTORY_TIMES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
ENERGY_DISTANCE_POINTS = 2_000
IMAGE_GRID_SIZE = 64  # samples shown in the grid of an image model
AUTOENCODER_DIR = "autoencoder"  # where export_autoencoder writes in the work directory
FID_KEY, DIGITS_KEY = 1, 2  # fold_in(jax.random.key(evaluate.seed), .) for the image metrics

Batch = dict[str, Any]  # "x": (B, *event), optionally "label": (B,)


def heldout_iterator(config: ml_collections.ConfigDict):
    """This process's rows of the held-out batches (`evaluate.batch_size` global rows each)."""
    return data.build_dataset(
        heldout_data_config(config),
        global_batch_size=config.evaluate.batch_size,
        seed=config.evaluate.seed,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
    )


def _toy_name(config: ml_collections.ConfigDict) -> str | None:
    return config.data.name if config.data.source == "toy" else None


# The two modes -------------------------------------------------------------------------------


def sample(
    config: ml_collections.ConfigDict, workdir: str, flow: TrainedFlow | None = None
) -> dict[str, Any]:
    """Draws `sample.num_samples` samples; writes them, trajectories, plots and metrics.

    Returns {"samples": (n, *event) array, "metrics": dict, "files": {what: path(s)}}.
    """
    judge.check_judge(config)
    flow = flow or load_trained_flow(config, workdir)
    sc, run = config.sample, flow.run
    objective, key = run.objective, jax.random.key(sc.seed)
    inputs = objective.source_batch(sc.num_samples, sc.seed)
    samples = map_batches(
        flow.compile(objective.sampler()), inputs, sc.batch_size, run.mesh, key, desc="sample"
    )
    num_paths = min(sc.num_trajectories, sc.num_samples)
    trajectories = map_batches(
        flow.compile(objective.sampler(TRAJECTORY_TIMES)),
        {k: v[:num_paths] for k, v in inputs.items()},
        batch_multiple(run.mesh, num_paths),  # one batch, padded to split evenly
        run.mesh,
        key,
        desc="trajectories",
    ).swapaxes(0, 1)
    result = {"step": flow.step, "num_samples": len(samples), **objective.sample_settings()}
    name = _toy_name(config)
    if name in metrics.BOUNDED_SUPPORT:
        result["fraction_in_support"] = metrics.fraction_in_support(name, samples)
    if judge.is_text(config):
        result.update(judge.text_sample_metrics(config, samples))
    files = {
        "samples": os.path.join(workdir, SAMPLES_FILE),
        "trajectories": os.path.join(workdir, TRAJECTORIES_FILE),
        "sample metrics": os.path.join(workdir, SAMPLE_METRICS_FILE),
    }
    # Plots show samples in the data space (not the predictions of a paired-data objective).
    in_data_space = samples.shape[1:] == tuple(run.event_shape)
    if run.event_shape == (2,) and in_data_space:
        files["plots"] = _plot_2d(config, flow, samples, trajectories, workdir)
    grid = samples[:IMAGE_GRID_SIZE] if len(run.event_shape) == 3 and in_data_space else None
    if grid is not None and config.evaluate.get("autoencoder"):
        grid = decode_latents(config, grid)
    if grid is not None and grid.shape[-1] in (1, 3):  # images (H, W, C): the first samples
        files["plots"] = [os.path.join(workdir, PLOTS_DIR, "samples.png")]
        if jax.process_index() == 0:
            os.makedirs(os.path.join(workdir, PLOTS_DIR), exist_ok=True)
            data.save_image_grid(files["plots"][0], grid, scale=4)
    if jax.process_index() == 0:
        np.save(files["samples"], samples)
        np.save(files["trajectories"], trajectories)
        _write_json(files["sample metrics"], result)
        if "plots" in files:
            write_images(
                workdir,
                flow.step,
                {f"samples/{os.path.splitext(os.path.basename(f))[0]}": f for f in files["plots"]},
            )
    log.info(
        "Sampled %d points from the checkpoint of step %d: %s", len(samples), flow.step, result
    )
    return {"samples": samples, "metrics": result, "files": files}


def evaluate(
    config: ml_collections.ConfigDict,
    workdir: str,
    flow: TrainedFlow | None = None,
    samples: np.ndarray | None = None,
) -> dict[str, Any]:
    """Held-out likelihood metrics (and toy sample metrics); writes and returns
    <workdir>/metrics.json.

    Args:
      samples: model samples to score (e.g. those `sample` just drew); drawn here
        (`evaluate.num_samples`, with the sampling settings) if None.

    Returns {"metrics": dict, "files": {"metrics": path}}.
    """
    judge.check_judge(config)
    flow = flow or load_trained_flow(config, workdir)
    ev, run = config.evaluate, flow.run
    objective, key = run.objective, jax.random.key(ev.seed)
    log_p_fn = flow.compile(objective.log_likelihood())
    iterator, sharding = heldout_iterator(config), batch_sharding(run.mesh)
    log_p, points = [], []
    num_batches = math.ceil(ev.num_points / ev.batch_size)
    with Progress(num_batches, "evaluate", "batch", enabled=jax.process_index() == 0) as progress:
        for b in range(num_batches):
            batch = global_batch(next(iterator), sharding)
            log_p.append(to_host(log_p_fn(batch, jax.random.fold_in(key, b))))
            points.append(to_host(batch["x"]))
            progress.update()
    log_p, points = np.concatenate(log_p)[: ev.num_points], np.concatenate(points)[: ev.num_points]
    result = {
        "step": flow.step,
        "num_points": len(log_p),
        **objective.likelihood_metrics(log_p, points),
    }
    name = _toy_name(config)
    if samples is None and (name is not None or judge.is_text(config)):
        samples = map_batches(
            flow.compile(objective.sampler()),
            objective.source_batch(ev.num_samples, ev.seed),
            config.sample.batch_size,
            run.mesh,
            key,
            desc="sample",
        )
    if judge.is_text(config):
        result.update(judge.text_sample_metrics(config, samples))
    if name is not None:
        if name in metrics.BOUNDED_SUPPORT:
            result["fraction_in_support"] = metrics.fraction_in_support(name, samples)
        if name in metrics.CLOSED_FORM_DENSITY:
            result["true_nll_nats"] = metrics.true_negative_log_likelihood(name, points)
        result["energy_distance"] = metrics.energy_distance(
            objective.points(samples[:ENERGY_DISTANCE_POINTS]),
            objective.points(points[:ENERGY_DISTANCE_POINTS]),
        )
    if objective.compares_samples:
        reference = objective.source_batch(ev.num_samples, ev.seed)
        if samples is None:
            samples = map_batches(flow.compile(objective.sampler()), reference,
                                  config.sample.batch_size, run.mesh, key, desc="sample")
        result.update(objective.sample_metrics(samples, reference, run.mesh))
    if objective.scores_images and len(run.event_shape) == 3:
        result.update(image_metrics(config, flow, key, samples))
    filename = os.path.join(workdir, EVAL_METRICS_FILE)
    if jax.process_index() == 0:
        _write_json(filename, result)
    log.info("Evaluated the checkpoint of step %d: %s", flow.step, result)
    return {"metrics": result, "files": {"metrics": filename}}


def export_autoencoder(
    config: ml_collections.ConfigDict, workdir: str, flow: TrainedFlow | None = None
) -> dict[str, Any]:
    """Evaluates an autoencoder run and writes its EMA weights as a diffusers checkpoint in
    <workdir>/autoencoder, with scaling_factor = 1 / the std of held-out latent means.

    Returns {"metrics": the evaluation's, "files": {"autoencoder": directory, "metrics": path}}.
    """
    if config.objective != "autoencoder":
        raise ConfigError(
            [f"--mode=export writes an autoencoder; this run's objective is "
             f"{config.objective!r} (use a config with objective 'autoencoder')."]
        )
    flow = flow or load_trained_flow(config, workdir)
    result = evaluate(config, workdir, flow)
    directory = os.path.join(workdir, AUTOENCODER_DIR)
    if jax.process_index() == 0:
        model = nnx.merge(flow.run.graphdef, jax.device_get(flow.state.ema_params),
                          jax.device_get(flow.state.model_state))
        save_autoencoder_kl(model, directory, scaling_factor=result["metrics"]["scaling_factor"])
    return {"metrics": result["metrics"],
            "files": {"autoencoder": directory, **result["files"]}}


@functools.lru_cache(maxsize=2)
def _latent_decoder(path: str) -> Callable[[jax.Array], jax.Array]:
    """The jitted `images` (scaled latents -> pixels) of the autoencoder at `path`."""
    autoencoder = load_autoencoder_kl(path)
    graphdef, state = nnx.split(autoencoder)
    return jax.jit(lambda z: nnx.merge(graphdef, state).images(z))


def decode_latents(config: ml_collections.ConfigDict, latents: np.ndarray) -> np.ndarray:
    """Latent samples (N, h, w, z) as images (N, H, W, C) in [-1, 1], decoded by the
    `evaluate.autoencoder` of a latent run, `sample.batch_size` at a time."""
    decode = _latent_decoder(config.evaluate.autoencoder)
    batch = min(config.sample.batch_size, len(latents))
    return np.clip(data.decode_in_batches(decode, latents, batch), -1, 1)


def decoded_shape(config: ml_collections.ConfigDict, flow: TrainedFlow) -> tuple[int, ...]:
    """The shape of a sample as an image: decoded by `evaluate.autoencoder` when it is set."""
    if not config.evaluate.get("autoencoder"):
        return tuple(flow.run.event_shape)
    autoencoder = read_config(config.evaluate.autoencoder)
    h, w, _ = flow.run.event_shape
    f = autoencoder.downsampling
    return (h * f, w * f, autoencoder.out_channels)


def image_sampler(
    config: ml_collections.ConfigDict, flow: TrainedFlow
) -> Callable[..., np.ndarray]:
    """`draw(key, size, progress=None)`: `size` samples (on the host) from source draws seeded
    by `key`, in sharded batches of `sample.batch_size`, decoded to images by
    `evaluate.autoencoder` for latent runs, clipped to the pixel range [-1, 1] as when images
    are saved; the image source of `flowjax.metrics.image_batches`. Each draw advances
    `progress` (a `Progress` of samples) by its size."""
    run = flow.run
    sampler = flow.compile(run.objective.sampler())

    def draw(key: jax.Array, size: int, progress: Progress | None = None) -> np.ndarray:
        seed = int(jax.random.randint(key, (), 0, np.iinfo(np.int32).max))
        inputs = run.objective.source_batch(size, seed)
        images = map_batches(sampler, inputs, config.sample.batch_size, run.mesh, key)
        if config.evaluate.get("autoencoder"):
            images = decode_latents(config, images)
        if progress is not None:
            progress.update(size)
        return np.clip(images, -1, 1)

    return draw


def image_metrics(
    config: ml_collections.ConfigDict,
    flow: TrainedFlow,
    key: jax.Array,
    samples: np.ndarray | None = None,
) -> dict[str, float]:
    """Sample quality of an image model.

    With `evaluate.fid_reference` set: FID and Inception Score (`flowjax.metrics.inception`) of
    `evaluate.fid_num_samples` fresh samples, drawn and scored one `sample.batch_size` batch at
    a time, so that only feature statistics are kept (50,000 CIFAR-10 samples never sit in
    memory). On the offline digits data: the Frechet distance in the digits classifier's
    features (`flowjax.metrics.digits_frechet_distance`, NOT an FID) of `samples`, or of
    `evaluate.num_samples` fresh ones, to the real training digits.
    """
    ev = config.evaluate
    draw = image_sampler(config, flow)
    result = {}
    if ev.fid_reference:
        with Progress(
            ev.fid_num_samples, "FID samples", "sample", enabled=jax.process_index() == 0
        ) as progress:
            scores = metrics.inception_metrics(
                functools.partial(draw, progress=progress),
                ev.fid_num_samples,
                reference=ev.fid_reference,
                batch_size=config.sample.batch_size,
                key=jax.random.fold_in(key, FID_KEY),
                weights=ev.inception_weights or None,
            )
        result.update(fid_num_samples=ev.fid_num_samples, **scores)
    if ev.get("autoencoder") and samples is not None:
        samples = decode_latents(config, samples)
    if data.images.DIGITS_SHAPE in (flow.run.event_shape, decoded_shape(config, flow)):
        if samples is None:
            samples = draw(jax.random.fold_in(key, DIGITS_KEY), ev.num_samples)
        real = data.load_digits("train")[0]
        result["digits_frechet_distance"] = metrics.digits_frechet_distance(
            np.clip(samples, -1.0, 1.0), real
        )
    return result


def _plot_2d(config, flow: TrainedFlow, samples, trajectories, workdir) -> list[str]:
    """Samples, trajectories and (where the objective's likelihood is cheap) the model density
    of a 2D flow as PNGs; returns their paths."""
    objective = flow.run.objective
    samples, trajectories = objective.points(samples), objective.points(trajectories)
    reference = objective.points(next(heldout_iterator(config))["x"])  # this process's rows
    extent = plots.plot_extent(samples, reference)
    directory = os.path.join(workdir, PLOTS_DIR)
    names = ["samples.png", "trajectories.png"]
    if objective.plot_density:
        names.append("density.png")
    files = [os.path.join(directory, f) for f in names]
    if objective.plot_density:
        size = config.sample.density_grid_size
        axis = np.linspace(-extent, extent, size, dtype=np.float32)
        grid = np.stack(np.meshgrid(axis, axis), axis=-1).reshape(-1, 2)
        grid_inputs = {"x": grid}
        if flow.run.num_classes is not None:  # the density of class 0
            grid_inputs["label"] = np.zeros(len(grid), np.int32)
        log_p = map_batches(
            flow.compile(objective.log_likelihood()),
            grid_inputs,
            config.evaluate.batch_size,
            flow.run.mesh,
            jax.random.key(config.evaluate.seed),
        ).reshape(size, size)
    if jax.process_index() == 0:
        os.makedirs(directory, exist_ok=True)
        plots.plot_samples(files[0], samples, reference, extent)
        plots.plot_trajectories(files[1], trajectories, np.asarray(TRAJECTORY_TIMES), extent)
        if objective.plot_density:
            plots.plot_density(files[2], log_p, extent, f"model density (step {flow.step})")
    return files


def _write_json(filename: str, record: dict) -> None:
    with open(filename, "w") as f:
        json.dump(record, f, indent=2)
        f.write("\n")
