"""IMDM on CPU: the synthetic one-token-repeated task, with and without distillation.

The task (configs/imdm/synthetic.py:<stage>,<model>,cpu): sequences of L = 8 copies of one token
drawn uniformly from V = 32; a sample is valid when its tokens are all equal. Trained, all with
the same width-64, 2-block transformer and batch 128:

  MDM           masked diffusion (MDLM's ELBO), from scratch;
  IMDM          the infinite-mask model loaded from MDM (`train.init_from`), trained further;
  MDM, continued  MDM trained as much further (the same budget as IMDM, without the eps);
  X + SDTT      self-distillation through time of X, 10 rounds, the teacher's 1,024 steps down
                to a one-step student;
  X + ReDi      X retrained on 20,000 of its own 128-step samples (couplings from all-masked
                starts; for IMDM with eps fixed along each sample and regenerated from its seed);
  IMDM + ReDi, eps-determined couplings   a diagnostic: IMDM retrained on 20,000 couplings
                whose sequence is a simple function of eps (the token read off the first
                position's eps), i.e. on a coupling that carries a map from eps to sequences.

For each model and 1, 2, 4, 8 and 128 sampling steps, over 2,048 samples: the validity, the
entropy of the tokens of all samples pooled (log V = 3.47 nats for the data: a model that is
valid by always writing the same token has 0, so a high validity with a low entropy is a
collapse, not a success), and the number of distinct valid sequences. For the one-step sampler
also the validity computed exactly from the model's own per-position marginals at the
all-masked input, sum_v prod_i p_i(v) (for IMDM averaged over 256 draws of eps), next to the
bound V^-(L-1) of uniform marginals and the data's factorization error (L - 1) log V; and
the exact validity of a PERFECT masked model at each step count (the true posterior's sampler,
`flowjax.metrics.masked_sampler_validity`), the ceiling of every masked model.
Results: experiments/imdm/results/synthetic.json.

Part "text": MDM, IMDM and their SDTT students (ReDi is left out: writing 20,000 couplings of
32 tokens takes too long on 2 cores) on the synthetic Markov language of experiments/text (V = 32,
L = 32, Dirichlet(0.2) rows, exact likelihood): for 1, 2, 4, 8 and 128 steps the EXACT generative
perplexity of 1,024 samples under the true process and their mean unigram entropy, next to the
language's floor and the data's entropy. Results: experiments/imdm/results/text.json.

    python experiments/imdm/run.py --parts synthetic text --workdir /tmp/imdm_runs
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from flax import nnx

from flowjax import data, metrics, models, paths
from flowjax.train import load_config_file, train
from flowjax.train.couplings import write_couplings
from flowjax.train.objectives.imdm import InfiniteMaskDiffusion, per_example_noise
from flowjax.train.trained import load_trained_flow, map_batches

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CONFIG = os.path.join(REPO, "configs", "imdm", "synthetic.py")
STEPS = (1, 2, 4, 8, 128)
NUM_SAMPLES = 2048
NUM_COUPLINGS = 20_000
COUPLING_STEPS = 128


MARKOV = dict(
    source="synthetic_text", name="markov", vocab_size=32, seq_len=32, order=1, concentration=0.2
)


def config_of(stage: str, model: str, part: str = "synthetic", **overrides):
    config = load_config_file(CONFIG, f"{stage},{model},cpu")
    config.evaluate.after_training = False
    if part == "text" and stage != "redi":
        config.data = dict(MARKOV)
    for key, value in overrides.items():
        section, name = key.split(".")
        config[section][name] = value
    return config


def ideal_masked_validity(config, vocab: int, length: int) -> dict:
    """The exact validity of the masked sampler with the true posterior at each step count
    (`flowjax.metrics.masked_sampler_validity`): the best any masked model can reach."""
    scheduler = paths.MaskedDiffusionScheduler(
        config.path.schedule, config.path.eps_start, config.path.eps_end
    )
    out = {}
    for steps in STEPS:
        kappas = np.asarray(scheduler(jnp.linspace(0.0, 1.0, steps + 1)).alpha_t, np.float64)
        kappas[-1] = 1.0  # the last step reveals every position
        out[f"steps_{steps}"] = metrics.masked_sampler_validity(kappas, length, vocab)
    return out


def pooled_entropy(samples: np.ndarray, vocab: int) -> float:
    counts = np.bincount(samples.ravel(), minlength=vocab)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def sample(config, workdir: str, steps: int, num: int, seed: int = 7):
    """`num` samples of the run in `workdir` with `steps` steps, and its objective."""
    config.sample.step_size = 1.0 / steps
    flow = load_trained_flow(config, workdir)
    objective = flow.run.objective
    inputs = objective.source_batch(num, seed)
    samples = map_batches(
        flow.compile(objective.sampler()), inputs, 512, flow.run.mesh, jax.random.key(seed)
    )
    return samples, flow


def evaluate_text(config, workdir: str) -> dict:
    """Exact generative perplexity and unigram entropy per step count on the Markov language."""
    lang = data.language(config.data)
    out = {}
    for steps in STEPS:
        samples, _ = sample(config, workdir, steps, 1024)
        log_p = lang.log_prob(samples)
        out[f"steps_{steps}"] = dict(
            exact_gen_perplexity=float(np.exp(-log_p.mean() / samples.shape[1])),
            unigram_entropy=float(metrics.unigram_entropy(samples).mean()),
        )
    return out


def evaluate(config, workdir: str) -> dict:
    """Validity, pooled entropy and distinct valid sequences per step count; exact one-step
    validity from the model's marginals."""
    out = {}
    vocab, length = config.data.vocab_size, config.data.seq_len
    for steps in STEPS:
        samples, flow = sample(config, workdir, steps, NUM_SAMPLES)
        valid = samples[np.all(samples == samples[:, :1], axis=1)]
        out[f"steps_{steps}"] = dict(
            validity=metrics.sequence_validity(samples),
            pooled_entropy=pooled_entropy(samples, vocab),
            distinct_valid=int(len(np.unique(valid[:, 0]))) if len(valid) else 0,
        )
    objective = flow.run.objective
    imdm = isinstance(objective, InfiniteMaskDiffusion)
    draws = 256 if imdm else 1

    def marginals(model, batch, key):
        kwargs = {}
        if imdm:
            kwargs["eps"] = per_example_noise(model, batch["noise_seed"], (length,))
        logits = objective._posterior(model)(batch["x"], jnp.zeros(()), **kwargs)
        return jax.nn.softmax(logits, axis=-1)[..., :vocab]

    batch = {
        "x": np.full((draws, length), vocab, np.int32),
        "noise_seed": np.arange(draws, dtype=np.uint32),
    }
    probs = map_batches(flow.compile(marginals), batch, draws, flow.run.mesh, jax.random.key(0))
    exact = np.asarray(metrics.independent_validity(np.asarray(probs, np.float64)))
    out["one_step_exact_validity"] = float(exact.mean())
    out["one_step_marginal_entropy"] = float(
        np.mean(-(probs * np.log(np.maximum(probs, 1e-30))).sum(-1))
    )
    return out


def eps_determined_couplings(config, path: str, num: int, seed: int = 0) -> str:
    """Couplings whose sample is a simple function of eps: all-masked starts, and the sequence
    repeating v = floor(V (eps_{1,1} / scale + 1) / 2), the token read from the first
    coordinate of the first position's eps. No teacher: a diagnostic of whether the network
    and the ReDi loss can learn a map from eps to whole sequences when a coupling carries one."""
    vocab, length = config.data.vocab_size, config.data.seq_len
    c = config.model
    embedding = models.InfiniteMaskEmbedding(
        8, c.noise_dim, noise=c.mask_noise, noise_scale=c.noise_scale, rngs=nnx.Rngs(0)
    )
    seeds = np.random.default_rng(seed).integers(0, 2**32, size=num, dtype=np.uint32)
    eps = np.asarray(jax.vmap(lambda s: embedding.draw(jax.random.key(s), (length,)))(seeds))
    token = np.clip(np.floor(vocab * (eps[:, 0, 0] / c.noise_scale + 1) / 2), 0, vocab - 1)
    x = np.repeat(token.astype(np.int32)[:, None], length, axis=1)
    x_start = np.full_like(x, vocab)
    return data.save_couplings(path, x, x_start, np.zeros(num, np.float32), seeds, vocab)


def train_stages(part: str, workdir: str) -> tuple[dict, dict]:
    """MDM, IMDM from it, and SDTT and ReDi of each: {name: (config, workdir)} and timings."""
    wd = lambda name: os.path.join(workdir, part, name)  # noqa: E731
    runs, timings = {}, {}

    def run(name: str, config) -> None:
        start = time.perf_counter()
        train(config, wd(name))
        timings[name] = time.perf_counter() - start
        runs[name] = (config, wd(name))
        print(f"{part}: trained {name} in {timings[name]:.0f} s", flush=True)

    run("MDM", config_of("teacher", "mdm", part))
    run("IMDM", config_of("teacher", "imdm", part, **{"train.init_from": wd("MDM")}))
    # the same budget without the infinite mask: MDM trained as long as MDM + IMDM
    run("MDM, continued", config_of("teacher", "mdm", part, **{"train.init_from": wd("MDM")}))
    for base, model in (("MDM", "mdm"), ("IMDM", "imdm")):
        run(f"{base} + SDTT", config_of("sdtt", model, part, **{"train.init_from": wd(base)}))
        if part == "text":  # couplings of 32-token sequences take too long on 2 cores
            continue
        teacher_config = runs[base][0]
        teacher_config.sample.step_size = 1.0 / COUPLING_STEPS
        couplings = os.path.join(workdir, part, f"{base}_couplings.npz")
        start = time.perf_counter()
        write_couplings(teacher_config, wd(base), couplings, NUM_COUPLINGS, steps=COUPLING_STEPS)
        timings[f"{base} couplings"] = time.perf_counter() - start
        redi = config_of("redi", model, part, **{"train.init_from": wd(base)})
        redi.data.path = couplings
        run(f"{base} + ReDi", redi)
    if part == "synthetic":
        couplings = eps_determined_couplings(
            runs["IMDM"][0], os.path.join(workdir, part, "eps_couplings.npz"), NUM_COUPLINGS
        )
        redi = config_of("redi", "imdm", part, **{"train.init_from": wd("IMDM")})
        redi.data.path = couplings
        run("IMDM + ReDi, eps-determined couplings", redi)
    for config, _ in runs.values():  # evaluate on the task, not on the couplings
        if config.loss.distill == "redi":
            config.data = config_of("teacher", "mdm", part).data
            config.loss.distill = "none"
    return runs, timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", default=["synthetic", "text"])
    parser.add_argument("--workdir", default="/tmp/imdm_runs")
    parser.add_argument("--results", default=os.path.join(HERE, "results"))
    args = parser.parse_args()
    os.makedirs(args.results, exist_ok=True)
    for part in args.parts:
        runs, timings = train_stages(part, args.workdir)
        config = runs["MDM"][0]
        vocab, length = config.data.vocab_size, config.data.seq_len
        if part == "synthetic":
            results = {
                "task": dict(vocab_size=vocab, seq_len=length),
                "independent_bound": metrics.factorization_bound(vocab, length),
                "data_factorization_error_nats": (length - 1) * math.log(vocab),
                "data_pooled_entropy": math.log(vocab),
                "ideal_masked_validity": ideal_masked_validity(config, vocab, length),
            }
            judge = evaluate
        else:
            lang = data.language(config.data)
            data_samples = lang.sample(np.random.default_rng(0), 1024)
            results = {
                "language": dict(MARKOV),
                "perplexity_floor": lang.perplexity_floor,
                "data_unigram_entropy": float(metrics.unigram_entropy(data_samples).mean()),
            }
            judge = evaluate_text
        results.update(train_seconds=timings, models={})
        for name, (config, workdir) in runs.items():
            results["models"][name] = judge(config, workdir)
            print(part, name, json.dumps(results["models"][name]), flush=True)
        out = os.path.join(args.results, f"{part}.json")
        with open(out, "w") as f:
            json.dump(results, f, indent=2)
        print(f"wrote {out}", flush=True)


if __name__ == "__main__":
    main()
