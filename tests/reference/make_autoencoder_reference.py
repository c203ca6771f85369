"""Builds tests/data/autoencoder_tiny/ and tests/data/autoencoder_tiny_reference.npz: a tiny KL
autoencoder (Stable Diffusion's VAE design, `diffusers.AutoencoderKL`) with random weights, and
its outputs.

1. `diffusers.AutoencoderKL` with block_out_channels (32, 64), layers_per_block 1,
   norm_num_groups 8, latent_channels 4 (f = 2), every parameter redrawn from a fixed seed
   (weights N(0, 0.15^2), biases N(0, 0.05^2), norm gains 1 + N(0, 0.1^2)), so that every
   parameter matters; saved with `save_pretrained` (config.json and
   diffusion_pytorch_model.safetensors) into tests/data/autoencoder_tiny/.
2. In float64, on fixed images `images` (2, 3, 16, 16) in [-1, 1] (channels first, as diffusers):
   the posterior's `mean` and `logvar` (2, 4, 8, 8), and `decoded` (2, 3, 16, 16), the decoding
   of the mean; `float32_decoded` from the float32 model measures diffusers' own float32 error.

`tests/test_autoencoder.py` converts the checkpoint with `flowjax.models.load_autoencoder_kl`
and compares. Run it from the repository root in an environment with torch, diffusers,
safetensors and NumPy (JAX is not needed):

    python tests/reference/make_autoencoder_reference.py
"""

from __future__ import annotations

import os
import shutil

import diffusers
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(os.path.dirname(HERE), "data")
CHECKPOINT = os.path.join(DATA, "autoencoder_tiny")
REFERENCE = os.path.join(DATA, "autoencoder_tiny_reference.npz")
SIZES = dict(
    in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 64),
    down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
    layers_per_block=1, norm_num_groups=8, sample_size=16,
)


def main() -> None:
    torch.manual_seed(0)
    model = diffusers.AutoencoderKL(**SIZES)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            if "norm" in name and name.endswith("weight"):
                parameter.copy_(1.0 + 0.1 * noise)
            elif name.endswith("bias"):
                parameter.copy_(0.05 * noise)
            else:
                parameter.copy_(0.15 * noise)
    shutil.rmtree(CHECKPOINT, ignore_errors=True)
    model.save_pretrained(CHECKPOINT, safe_serialization=True)
    images = torch.rand((2, 3, 16, 16), generator=generator) * 2 - 1
    out = {"images": images.numpy()}
    with torch.no_grad():
        float32_mean = model.encode(images).latent_dist.mean
        out["float32_decoded"] = model.decode(float32_mean).sample.numpy()
        model64 = model.double()
        posterior = model64.encode(images.double()).latent_dist
        out["mean"] = posterior.mean.float().numpy()
        out["logvar"] = posterior.logvar.float().numpy()
        out["decoded"] = model64.decode(posterior.mean).sample.float().numpy()
    np.savez_compressed(REFERENCE, **out)
    print(f"Wrote {CHECKPOINT} and {REFERENCE}.")


if __name__ == "__main__":
    main()
