"""The synthetic task of the Infinite Mask Diffusion Model (IMDM): one token repeated.

Sequences of L copies of one token drawn uniformly from V (the paper: V = 50,000, L = 10;
`flowjax.data.languages.RepeatedTokenLanguage`). A sample is valid when its tokens are all equal.
A masked diffusion model sampled in one step draws the positions independently from its
per-position marginals, so with the data's (uniform) marginals its validity is V^-(L-1)
(`flowjax.metrics.factorization_bound`); it can only rise by collapsing the marginals (lower
entropy). The factorization error of the data given an all-masked sequence, the conditional total
correlation, is (L - 1) log V (`flowjax.metrics.repeated_token_total_correlation`). The
authors' model for it: width 128, 4 blocks, 4 heads, D_eps = 128, no dropout.

Variants (`--config=configs/imdm/synthetic.py:<stage>[,<model>][,<size>]`):
  stage   teacher (default): trained on the data with the ELBO (an IMDM can start from a masked
          model with --config.train.init_from=WORKDIR);
          sdtt: self-distillation through time of the run named by --config.train.init_from
          (rounds of `loss.sdtt_round_updates` updates, the step doubling from 1/1,024 until the
          student takes 8 steps); redi: retraining on couplings, --config.data.path=FILE written
          by `flowjax.train.couplings.write_couplings` (and --config.train.init_from=TEACHER).
  model   imdm (default) or mdm (the masked diffusion model, MDLM's objective).
  size    (none) the paper's V = 50,000, L = 10; "cpu": V = 32, L = 8, a width-64 model of 2
          blocks, minutes on 2 CPU cores (experiments/imdm); "smoke": seconds.
"""

from __future__ import annotations

import ml_collections

from flowjax.train.config import default_config
from flowjax.train.registry import model_defaults

OBJECTIVES = {"imdm": "imdm", "mdm": "masked_diffusion"}
STAGES = ("teacher", "sdtt", "redi")
SIZES = {
    # V, L, width, depth, heads, D_eps, updates, batch
    None: (50_000, 10, 128, 4, 4, 128, 100_000, 256),
    "cpu": (32, 8, 64, 2, 2, 32, 2_000, 128),
    "smoke": (8, 4, 32, 1, 2, 8, 10, 16),
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    parts = [p for p in (arg or "").split(",") if p]
    stage = next((p for p in parts if p in STAGES), "teacher")
    model = next((p for p in parts if p in OBJECTIVES), "imdm")
    size = next((p for p in parts if p in ("cpu", "smoke")), None)
    unknown = sorted(set(parts) - set(STAGES) - set(OBJECTIVES) - {"cpu", "smoke"})
    if unknown:
        raise ValueError(
            f"Unknown variant(s) {unknown} of the IMDM synthetic config; stages {STAGES}, "
            f"models {tuple(OBJECTIVES)}, sizes ('cpu', 'smoke')."
        )
    vocab, length, width, depth, heads, noise_dim, updates, batch = SIZES[size]
    config = default_config(OBJECTIVES[model])
    config.data = dict(
        source="synthetic_text", name="repeated_token", vocab_size=vocab, seq_len=length
    )
    config.model = model_defaults("imdm_transformer" if model == "imdm" else "text_transformer")
    config.model.update(
        size="tiny", hidden_dim=width, depth=depth, num_heads=heads, cond_dim=64,
        time_conditioning=False, dropout=0.0,
    )
    if model == "imdm":
        config.model.update(noise_dim=noise_dim, mask_noise="uniform", noise_scale=1.0)
    config.path.update(schedule="linear", eps_start=1e-3, eps_end=0.0)
    config.optim.update(
        name="adamw", learning_rate=3e-4 if size is None else 1e-3, warmup_steps=100,
        grad_clip_norm=1.0, ema_decay=0.999,
    )
    config.train.update(num_steps=updates, global_batch_size=batch, log_every=100)
    config.checkpoint.every_steps = max(updates // 4, 10)
    config.sample.update(num_samples=1_024, batch_size=256, num_trajectories=4, step_size=1.0)
    config.evaluate.update(num_points=512, batch_size=256, num_samples=512)
    if stage == "sdtt":
        config.loss.distill = "sdtt"
        # IM-SDTT: lr 6e-5 with 500 warm-up steps at the paper's scale.
        config.optim.update(learning_rate=6e-5 if size is None else 3e-4, warmup_steps=50)
        config.loss.update(sdtt_start_steps=1024, sdtt_min_steps=1 if size else 8)
        rounds = 10 if size else 7  # 1,024 steps down to the minimum
        config.loss.sdtt_round_updates = max(updates // (2 * rounds), 1)
        config.train.num_steps = config.loss.sdtt_round_updates * rounds
    if stage == "redi":
        config.loss.distill = "redi"
        config.data = dict(source="couplings", path=ml_collections.config_dict.placeholder(str))
    if size == "smoke":
        config.train.log_every = 5
        config.sample.update(num_samples=32, batch_size=32)
        config.evaluate.update(num_points=32, batch_size=32, num_samples=32)
    return config
