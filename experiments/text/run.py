"""Language models on CPU: a synthetic language whose perplexity floor is known, and English text.

Part "synthetic" (`--parts synthetic`): on a random order-1 Markov language (flowjax.data
.languages.MarkovLanguage: 32 symbols, sequences of 32, Dirichlet(0.2) rows, exact entropy), the
autoregressive baseline, MDLM (masked diffusion, linear schedule, no time conditioning) and
discrete flow matching with a mask or a uniform source, each with the polynomial (kappa_t = t)
and the kinetic-optimal scheduler, all with the same tiny text transformer (width 64, 2 blocks,
4 heads), the same number of updates and batch, and the same optimiser. Reported per method:
the held-out perplexity (exact for AR, the ELBO bound for the others) next to the language's
floor exp(H / L), and for 8 to 1,024 sampling steps the EXACT generative perplexity of 256
samples under the true process and their mean unigram entropy (the data's is shown as well).
Results: experiments/text/results/synthetic.json and synthetic.png.

Part "english" (`--parts english`): the `cpu` variants of configs/mdlm/lm1b.py (MDLM and the AR
baseline) on Python's documentation topics in bytes; held-out perplexities and printed samples.
Results: experiments/text/results/english.json.

    python experiments/text/run.py --parts synthetic english --workdir /tmp/text_runs
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from flowjax import data  # noqa: E402
from flowjax.metrics import unigram_entropy  # noqa: E402
from flowjax.train import default_config, inference, load_config_file, train  # noqa: E402
from flowjax.train.judge import text_sample_metrics  # noqa: E402
from flowjax.train.registry import model_defaults  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
LANGUAGE = dict(
    source="synthetic_text", name="markov", vocab_size=32, seq_len=32, order=1, concentration=0.2
)
STEPS = (8, 32, 128, 512, 1024)
METHODS = {
    "AR": ("autoregressive", {}),
    "MDLM": ("masked_diffusion", {}),
    "DFM mask t": ("discrete_flow_matching", dict(source="mask", scheduler="polynomial")),
    "DFM mask KO": ("discrete_flow_matching", dict(source="mask", scheduler="kinetic_optimal")),
    "DFM uniform t": ("discrete_flow_matching", dict(source="uniform", scheduler="polynomial")),
    "DFM uniform KO": (
        "discrete_flow_matching", dict(source="uniform", scheduler="kinetic_optimal")
    ),
}


def synthetic_config(objective: str, path: dict, num_steps: int):
    config = default_config(objective)
    config.data = dict(LANGUAGE)
    config.model = model_defaults("text_transformer")
    config.model.update(hidden_dim=64, depth=2, num_heads=4, cond_dim=32)
    config.model.time_conditioning = objective == "discrete_flow_matching"
    config.model.causal = objective == "autoregressive"
    config.path.update(path)
    if objective == "discrete_flow_matching":
        config.loss.name = "generalized_kl"  # an ELBO, comparable with MDLM's
    config.optim.update(learning_rate=1e-3, warmup_steps=100, ema_decay=0.999, grad_clip_norm=1.0)
    config.train.update(num_steps=num_steps, global_batch_size=64, log_every=200)
    config.checkpoint.every_steps = num_steps
    config.sample.update(num_samples=256, batch_size=256, num_trajectories=4)
    config.evaluate.update(num_points=2048, batch_size=512, num_samples=512, after_training=False)
    if "elbo_time_samples" in config.evaluate:
        config.evaluate.elbo_time_samples = 32
    return config


def samples_at(config, workdir: str, steps: int) -> np.ndarray:
    """512 samples of the trained run with `steps` sampling steps."""
    config = config.copy_and_resolve_references()
    if "step_size" in config.sample:
        config.sample.step_size = 1.0 / steps
    flow = inference.load_trained_flow(config, workdir)
    inputs = flow.run.objective.source_batch(config.sample.num_samples, config.sample.seed)
    return inference.map_batches(
        flow.compile(flow.run.objective.sampler()), inputs, config.sample.batch_size, flow.run.mesh,
        jax.random.key(config.sample.seed),
    )


def run_synthetic(workdir: str, num_steps: int) -> dict:
    language = data.language(LANGUAGE)
    reference = language.sample(np.random.default_rng(123), 512)
    result = {
        "language": LANGUAGE,
        "perplexity_floor": language.perplexity_floor,
        "entropy_nats_per_token": language.entropy / language.seq_len,
        "data_unigram_entropy": float(unigram_entropy(reference).mean()),
        "num_updates": num_steps,
        "methods": {},
    }
    for name, (objective, path) in METHODS.items():
        run_dir = os.path.join(workdir, name.replace(" ", "_"))
        config = synthetic_config(objective, path, num_steps)
        start = time.time()
        train(config, run_dir)
        seconds = time.time() - start
        held_out = inference.evaluate(config, run_dir)["metrics"]
        perplexity = held_out.get("perplexity", held_out.get("elbo_perplexity"))
        row = {"objective": objective, "path": path, "train_seconds": seconds,
               "heldout_perplexity": perplexity, "bound": objective != "autoregressive"}
        for steps in STEPS if objective != "autoregressive" else (None,):
            metrics = text_sample_metrics(config, samples_at(config, run_dir, steps or 1))
            row.setdefault("samples", []).append({"steps": steps, **metrics})
        result["methods"][name] = row
        print(name, json.dumps(row), flush=True)
    return result


def plot_synthetic(result: dict, filename: str) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, row in result["methods"].items():
        rows = row["samples"]
        if rows[0]["steps"] is None:
            for ax, key in zip(axes, ("exact_gen_perplexity", "unigram_entropy"), strict=True):
                ax.axhline(rows[0][key], ls=":", color="k", lw=1, label=f"{name} (token by token)")
            continue
        steps = [r["steps"] for r in rows]
        axes[0].plot(steps, [r["exact_gen_perplexity"] for r in rows], "o-", label=name)
        axes[1].plot(steps, [r["unigram_entropy"] for r in rows], "o-", label=name)
    axes[0].axhline(result["perplexity_floor"], color="r", lw=1, label="floor exp(H / L)")
    axes[1].axhline(result["data_unigram_entropy"], color="r", lw=1, label="data")
    axes[0].set(xscale="log", yscale="log", xlabel="sampling steps",
                ylabel="exact generative perplexity", title="samples under the true process")
    axes[1].set(xscale="log", xlabel="sampling steps", ylabel="nats",
                title="unigram entropy of samples")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(filename, dpi=110)
    plt.close(fig)


def run_english(workdir: str, num_updates: int | None) -> dict:
    result = {}
    for name, variant in (("MDLM", "mdlm,cpu"), ("AR", "ar,cpu")):
        config = load_config_file(os.path.join(REPO, "configs/mdlm/lm1b.py"), variant)
        if num_updates is not None:
            config.train.num_steps = config.checkpoint.every_steps = num_updates
        run_dir = os.path.join(workdir, "english_" + name)
        start = time.time()
        train(config, run_dir)
        seconds = time.time() - start
        samples = inference.sample(config, run_dir)["samples"]
        metrics = inference.evaluate(config, run_dir, samples=samples)["metrics"]
        text = data.decode_tokens(config.data, samples[:4])
        result[name] = {"config": f"configs/mdlm/lm1b.py:{variant}", "train_seconds": seconds,
                        "num_updates": metrics["step"],  # the run's last checkpoint
                        "metrics": metrics, "samples": text}
        print(name, json.dumps(result[name], indent=1), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["synthetic", "english"])
    parser.add_argument("--workdir", default="/tmp/flowjax_text")
    parser.add_argument("--num-updates", type=int, default=3000)
    parser.add_argument("--english-updates", type=int, default=None,
                        help="updates of the English runs (default: the cpu variant's 3,000)")
    args = parser.parse_args()
    out = os.path.join(HERE, "results")
    os.makedirs(out, exist_ok=True)
    if "synthetic" in args.parts:
        result = run_synthetic(args.workdir, args.num_updates)
        result["command"] = "python experiments/text/run.py --parts synthetic"
        result["load_average"] = os.getloadavg()
        with open(os.path.join(out, "synthetic.json"), "w") as f:
            json.dump(result, f, indent=1)
        plot_synthetic(result, os.path.join(out, "synthetic.png"))
    if "english" in args.parts:
        result = run_english(args.workdir, args.english_updates)
        result["command"] = "python experiments/text/run.py --parts english" + (
            f" --english-updates {args.english_updates}" if args.english_updates else "")
        with open(os.path.join(out, "english.json"), "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
