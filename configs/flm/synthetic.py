"""FLM and FMLM on synthetic languages with known answers (CPU runs of experiments/flm).

Tasks:
  repeated  the authors' toy ("alpha8"): one letter of 26 repeated 8 times
            (`flowjax.data.languages.RepeatedTokenLanguage`); a sample is valid when its 8 tokens
            are equal. A sampler that draws the positions independently from the data's
            marginals is valid with probability 26^-7; the flow carries the correlation in its
            continuous state, so a many-step FLM is valid almost always, a one-step FLM (the
            argmax of its first x-prediction, the product of the marginals) almost never, and
            the one-step flow map recovers (the paper's figure).
  markov    the order-1 Markov language of experiments/text (V = 32, L = 32, Dirichlet(0.2)
            rows): exact generative perplexity and entropy of the samples.

Stages (`--config=configs/flm/synthetic.py:<task>,<stage>[,smoke]`): "flm" (default), "flow_map"
(FMLM stage one, from --config.train.init_from=FLM_WORKDIR), "one_call" (stage two, from the
stage-one run), "mdm" (the masked diffusion model of the text issue, MDLM's objective, as the
discrete baseline at the same size). The network: 2 blocks, 4 heads, conditioning 64, no
dropout, width 128 for "repeated" (the authors' toy: 256 x 8 x 8, dropout 0.1) and 64 for
"markov"; AdamW 1e-3 (3e-4 for the distillation stages), EMA 0.999, batch 128; 3,000 / 2,000
updates for FLM and MDM, 1,500 / 1,000 for each FMLM stage.
"""

from __future__ import annotations

import ml_collections

from flowjax.train.config import default_config
from flowjax.train.registry import model_defaults

TASKS = {
    "repeated": dict(source="synthetic_text", name="repeated_token", vocab_size=26, seq_len=8),
    "markov": dict(
        source="synthetic_text", name="markov", vocab_size=32, seq_len=32, order=1,
        concentration=0.2,
    ),
}
STAGES = ("flm", "flow_map", "one_call", "mdm")
# width, FLM / MDM updates, updates of each FMLM stage
SIZES = {"repeated": (128, 3_000, 1_500), "markov": (64, 2_000, 1_000)}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    parts = [p for p in (arg or "").split(",") if p]
    unknown = sorted(set(parts) - set(TASKS) - set(STAGES) - {"smoke"})
    if unknown:
        raise ValueError(
            f"Unknown variant(s) {unknown} of the FLM synthetic config; tasks {tuple(TASKS)}, "
            f"stages {STAGES}, size 'smoke'."
        )
    task = next((p for p in parts if p in TASKS), "repeated")
    stage = next((p for p in parts if p in STAGES), "flm")
    mdm = stage == "mdm"
    width, updates, stage_updates = SIZES[task]
    config = default_config("masked_diffusion" if mdm else "flm")
    config.data = dict(TASKS[task])
    config.model = model_defaults("text_transformer" if mdm else "flm_transformer")
    config.model.update(
        size="tiny", hidden_dim=width, depth=2, num_heads=4, cond_dim=64, dropout=0.0,
        time_conditioning=not mdm,
    )
    config.optim.update(
        name="adamw", learning_rate=1e-3, warmup_steps=100, grad_clip_norm=1.0, ema_decay=0.999
    )
    config.train.update(num_steps=updates, global_batch_size=128, log_every=250)
    config.sample.update(num_samples=1_024, batch_size=512, num_trajectories=4)
    config.evaluate.update(num_points=512, batch_size=256, num_samples=512)
    if mdm:
        config.path.update(schedule="linear", eps_start=1e-3, eps_end=0.0)
        config.sample.step_size = 1.0 / 128.0
    else:
        config.sample.step_size = 1.0 / 128.0
    if stage in ("flow_map", "one_call"):
        config.loss.distill = stage
        config.loss.boundary_probability = 1.0 / (64.0 if stage == "flow_map" else 128.0)
        config.model.update(map_time=True, learned_weighting=True)
        config.optim.update(learning_rate=3e-4, warmup_steps=50)
        config.train.num_steps = stage_updates
        config.sample.step_size = 1.0
    config.checkpoint.every_steps = config.train.num_steps
    if "smoke" in parts:
        config.model.update(hidden_dim=32, depth=1, num_heads=2, cond_dim=16)
        config.train.update(num_steps=10, global_batch_size=16, log_every=5)
        config.checkpoint.every_steps = 10
        config.sample.update(num_samples=32, batch_size=32)
        config.evaluate.update(num_points=32, batch_size=32, num_samples=32)
    return config
