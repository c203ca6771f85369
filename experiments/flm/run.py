"""FLM and FMLM on CPU: the repeated-letter toy and a synthetic Markov language.

Part "toy" (configs/flm/synthetic.py:repeated,<stage>): one letter of 26 repeated 8 times.
Trained in sequence: FLM (3,000 updates), FMLM stage one from it (the semigroup flow map,
1,500 updates) and stage two from that (the one-call predictor, 1,500 updates). For 1, 2, 4, 8
and 128 steps, over 2,048 samples of each: the fraction of valid samples (all 8 letters equal),
the entropy of all sampled letters pooled (log 26 = 3.26 nats for the data: validity bought by
always writing one letter has 0) and the number of distinct valid sequences (26 at most).
The paper's claim: many-step FLM near 100% valid, one-step FLM fails, one-step FMLM recovers.

Part "text" (configs/flm/synthetic.py:markov,<stage>): the order-1 Markov language of
experiments/text (V = 32, L = 32, Dirichlet(0.2) rows, exact likelihood), all models the same
width-64, 2-block transformer: FLM (2,000 updates), FMLM's two stages (1,000 each), the masked
diffusion model of the text issue (MDM, 2,000 updates, the FLM's budget) and "MDM, continued"
(2,000 more, the FMLM pipeline's budget). For 1, 2, 4, 8 and 128 steps, 1,024 samples each: the
EXACT generative perplexity under the true process and the mean unigram entropy of a sample,
next to the language's floor and the data's entropy.

    python experiments/flm/run.py --parts toy text --workdir /tmp/flm_runs

Results: experiments/flm/results/{toy,text}.json (with the training times and the machine's
load).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import numpy as np

from flowjax import data, metrics
from flowjax.train import load_config_file, train
from flowjax.train.trained import load_trained_flow, map_batches

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CONFIG = os.path.join(REPO, "configs", "flm", "synthetic.py")
STEPS = (1, 2, 4, 8, 128)
TASKS = {"toy": "repeated", "text": "markov"}


def config_of(part: str, stage: str, **overrides):
    config = load_config_file(CONFIG, f"{TASKS[part]},{stage}")
    config.evaluate.after_training = False
    for key, value in overrides.items():
        section, name = key.split(".")
        config[section][name] = value
    return config


def draw(config, workdir: str, steps: int, num: int, seed: int = 7) -> np.ndarray:
    """`num` samples of the run in `workdir` with `steps` sampling steps."""
    config.sample.step_size = 1.0 / steps
    flow = load_trained_flow(config, workdir)
    objective = flow.run.objective
    sampler = flow.compile(objective.sampler())
    inputs = objective.source_batch(num, seed)
    return map_batches(sampler, inputs, 512, flow.run.mesh, jax.random.key(seed))


def pooled_entropy(samples: np.ndarray, vocab: int) -> float:
    counts = np.bincount(samples.ravel(), minlength=vocab)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def evaluate_toy(config, workdir: str) -> dict:
    out = {}
    for steps in STEPS:
        samples = draw(config, workdir, steps, 2048)
        valid = samples[np.all(samples == samples[:, :1], axis=1)]
        out[f"steps_{steps}"] = dict(
            validity=metrics.sequence_validity(samples),
            pooled_entropy=pooled_entropy(samples, config.data.vocab_size),
            distinct_valid=int(len(np.unique(valid[:, 0]))) if len(valid) else 0,
        )
    return out


def evaluate_text(config, workdir: str) -> dict:
    language = data.language(config.data)
    out = {}
    for steps in STEPS:
        samples = draw(config, workdir, steps, 1024)
        log_p = language.log_prob(samples)
        out[f"steps_{steps}"] = dict(
            exact_gen_perplexity=float(np.exp(-log_p.mean() / samples.shape[1])),
            unigram_entropy=float(metrics.unigram_entropy(samples).mean()),
        )
    return out


def run_part(part: str, workdir: str) -> dict:
    wd = lambda name: os.path.join(workdir, part, name)  # noqa: E731
    runs, timings = {}, {}

    def run(name: str, config) -> None:
        start = time.perf_counter()
        train(config, wd(name))
        timings[name] = round(time.perf_counter() - start, 1)
        runs[name] = (config, wd(name))
        print(f"{part}: trained {name} in {timings[name]:.0f} s", flush=True)

    run("FLM", config_of(part, "flm"))
    run("FMLM stage one", config_of(part, "flow_map", **{"train.init_from": wd("FLM")}))
    run("FMLM", config_of(part, "one_call", **{"train.init_from": wd("FMLM stage one")}))
    if part == "text":
        run("MDM", config_of(part, "mdm"))
        budget = sum(runs[n][0].train.num_steps for n in ("FMLM stage one", "FMLM"))
        run("MDM, continued", config_of(
            part, "mdm", **{"train.init_from": wd("MDM"), "train.num_steps": budget}
        ))
    evaluate = evaluate_toy if part == "toy" else evaluate_text
    results = {}
    for name, (config, path) in runs.items():
        start = time.perf_counter()
        results[name] = evaluate(config, path)
        print(f"{part}: {name}: {json.dumps(results[name])} ({time.perf_counter() - start:.0f} s)")
    out = {"models": results, "train_seconds": timings, "load_at_start": os.getloadavg()[0]}
    if part == "text":
        language = data.language(runs["FLM"][0].data)
        out["perplexity_floor"] = language.perplexity_floor
        rng = np.random.default_rng(0)
        out["data_unigram_entropy"] = float(
            metrics.unigram_entropy(language.sample(rng, 4096)).mean()
        )
    else:
        out["independent_marginals_validity"] = 26.0**-7
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", default=["toy", "text"], choices=["toy", "text"])
    parser.add_argument("--workdir", default="/tmp/flm_runs")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    for part in args.parts:
        load = os.getloadavg()[0]
        result = run_part(part, args.workdir)
        result["load_at_start"] = load
        with open(os.path.join(args.out, f"{part}.json"), "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
