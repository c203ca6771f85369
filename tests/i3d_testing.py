"""Random I3D weights in the PyTorch key layout and an independent forward pass in
torch.nn.functional, shared by tests/test_fvd.py and the stored reference it checks against.

The real `i3d_pretrained_400.pt` cannot be downloaded here, so the tests draw a state dict with
exactly its keys and shapes (those of piergiaj/pytorch-i3d's `InceptionI3d(400)`, listed below
from that code's own table, not from flowjax) with NumPy from a fixed seed. The reference forward
pass re-implements the PyTorch port with torch.nn.functional: conv3d after the port's
TensorFlow-SAME padding rule, batch norm in eval mode, max_pool3d after zero padding by the same
rule, the inception concatenations, the 2x7x7 average pool, the 1x1x1 logits and the mean over
time.

Only NumPy is imported at the top. Run as a script where torch is installed,

    PYTHONPATH=/path/to/torch python tests/i3d_testing.py

it rewrites tests/data/i3d_torch_reference.npz (the torch outputs on `reference_clip()` and
`reference_map()`), which the default tests compare with flowjax's network without torch.
"""

from __future__ import annotations

import os

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE_FILE = os.path.join(REPO, "tests", "data", "i3d_torch_reference.npz")
SEED = 0
EPSILON = 1e-5
CLIP_SHAPE = (1, 10, 64, 64, 3)
"""A clip small enough for a unit test: the Mixed_5c map is (1, 2, 2, 2, 1024)."""
MAP_SHAPE = (1, 3, 7, 7, 1024)
"""A Mixed_5c map for the head: the 2x7x7 pool leaves 2 positions in time, averaged."""

# piergiaj/pytorch-i3d: InceptionModule(in_channels, [b0, b1a, b1b, b2a, b2b, b3b]).
MIXED = {
    "Mixed_3b": (192, [64, 96, 128, 16, 32, 32]),
    "Mixed_3c": (256, [128, 128, 192, 32, 96, 64]),
    "Mixed_4b": (128 + 192 + 96 + 64, [192, 96, 208, 16, 48, 64]),
    "Mixed_4c": (192 + 208 + 48 + 64, [160, 112, 224, 24, 64, 64]),
    "Mixed_4d": (160 + 224 + 64 + 64, [128, 128, 256, 24, 64, 64]),
    "Mixed_4e": (128 + 256 + 64 + 64, [112, 144, 288, 32, 64, 64]),
    "Mixed_4f": (112 + 288 + 64 + 64, [256, 160, 320, 32, 128, 128]),
    "Mixed_5b": (256 + 320 + 128 + 128, [256, 160, 320, 32, 128, 128]),
    "Mixed_5c": (256 + 320 + 128 + 128, [384, 192, 384, 48, 128, 128]),
}


def torch_layout(num_classes: int = 400) -> list[tuple[str, tuple[int, ...]]]:
    """(key, shape) of every tensor of the state dict of `InceptionI3d(num_classes)`."""
    units = [
        ("Conv3d_1a_7x7", 3, 64, 7),
        ("Conv3d_2b_1x1", 64, 64, 1),
        ("Conv3d_2c_3x3", 64, 192, 3),
    ]
    for name, (cin, c) in MIXED.items():
        units += [
            (f"{name}.b0", cin, c[0], 1),
            (f"{name}.b1a", cin, c[1], 1),
            (f"{name}.b1b", c[1], c[2], 3),
            (f"{name}.b2a", cin, c[3], 1),
            (f"{name}.b2b", c[3], c[4], 3),
            (f"{name}.b3b", cin, c[5], 1),
        ]
    layout = []
    for name, cin, cout, k in units:
        layout.append((f"{name}.conv3d.weight", (cout, cin, k, k, k)))
        layout += [(f"{name}.bn.{leaf}", (cout,)) for leaf in
                   ("weight", "bias", "running_mean", "running_var")]
    layout += [("logits.conv3d.weight", (num_classes, 1024, 1, 1, 1)),
               ("logits.conv3d.bias", (num_classes,))]
    return layout


def random_state_dict(seed: int = SEED, num_classes: int = 400) -> dict[str, np.ndarray]:
    """Float32 tensors with the layout's keys and shapes: He-normal kernels, batch-norm
    statistics near (not at) the identity, so that activations stay of order one."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in torch_layout(num_classes):
        if name.endswith("conv3d.weight"):
            value = rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[1:]))
        elif name.endswith("bn.weight"):
            value = rng.uniform(0.8, 1.2, shape)
        elif name.endswith("running_var"):
            value = rng.uniform(0.5, 2.0, shape)
        else:  # bn.bias, bn.running_mean, logits.conv3d.bias
            value = 0.1 * rng.standard_normal(shape)
        weights[name] = value.astype(np.float32)
    return weights


def reference_clip(seed: int = SEED, shape=CLIP_SHAPE) -> np.ndarray:
    """A clip (B, T, H, W, 3) uniform in [-1, 1], float32."""
    return np.random.default_rng(seed + 1).uniform(-1, 1, shape).astype(np.float32)


def reference_map(seed: int = SEED) -> np.ndarray:
    """A non-negative Mixed_5c map (B, T', 7, 7, 1024) (post-ReLU, like the real one)."""
    return np.maximum(np.random.default_rng(seed + 2).standard_normal(MAP_SHAPE), 0).astype(
        np.float32
    )


# ------------------------------------------------------------------------------------------
# The independent forward pass (torch.nn.functional, channels first as in the port).


def _same_pad(x, kernel, stride):
    """The port's padding: total max(k - s, 0) if s divides the size, else max(k - size % s, 0),
    floor before / ceil after; zeros."""
    import torch.nn.functional as F

    pads = []
    for size, k, s in zip(x.shape[2:], kernel, stride):
        total = max(k - s, 0) if size % s == 0 else max(k - size % s, 0)
        pads.append((total // 2, total - total // 2))
    return F.pad(x, [p for pair in reversed(pads) for p in pair])


def _unit(sd, name, x, stride=(1, 1, 1), eps=EPSILON):
    import torch.nn.functional as F

    weight = sd[f"{name}.conv3d.weight"]
    x = F.conv3d(_same_pad(x, weight.shape[2:], stride), weight,
                 sd.get(f"{name}.conv3d.bias"), stride)
    if f"{name}.bn.weight" not in sd:
        return x
    x = F.batch_norm(x, sd[f"{name}.bn.running_mean"], sd[f"{name}.bn.running_var"],
                     sd[f"{name}.bn.weight"], sd[f"{name}.bn.bias"], training=False, eps=eps)
    return F.relu(x)


def _max_pool(x, kernel, stride):
    import torch.nn.functional as F

    return F.max_pool3d(_same_pad(x, kernel, stride), kernel, stride)


def _torch_state(state_dict):
    import torch

    return {k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in state_dict.items()}


def torch_features(state_dict, clip: np.ndarray, eps: float = EPSILON) -> np.ndarray:
    """The Mixed_5c map (B, T', H', W', 1024) of clips (B, T, H, W, 3), via torch."""
    import torch

    sd = _torch_state(state_dict)
    with torch.no_grad():
        x = torch.from_numpy(clip).permute(0, 4, 1, 2, 3).contiguous()
        x = _unit(sd, "Conv3d_1a_7x7", x, (2, 2, 2), eps)
        x = _max_pool(x, (1, 3, 3), (1, 2, 2))
        x = _unit(sd, "Conv3d_2c_3x3", _unit(sd, "Conv3d_2b_1x1", x, eps=eps), eps=eps)
        x = _max_pool(x, (1, 3, 3), (1, 2, 2))
        pools = {"Mixed_4b": ((3, 3, 3), (2, 2, 2)), "Mixed_5b": ((2, 2, 2), (2, 2, 2))}
        for name in MIXED:
            if name in pools:
                x = _max_pool(x, *pools[name])
            u = lambda branch, h: _unit(sd, f"{name}.{branch}", h, eps=eps)  # noqa: E731
            x = torch.cat([
                u("b0", x),
                u("b1b", u("b1a", x)),
                u("b2b", u("b2a", x)),
                u("b3b", _max_pool(x, (3, 3, 3), (1, 1, 1))),
            ], dim=1)
        return x.permute(0, 2, 3, 4, 1).numpy()


def torch_head(state_dict, feature_map: np.ndarray) -> np.ndarray:
    """Logits (B, classes) of a Mixed_5c map (B, T', 7, 7, 1024): average pool, 1x1x1 conv,
    spatial squeeze, mean over time (the TATS / VideoGPT forward)."""
    import torch
    import torch.nn.functional as F

    sd = _torch_state(state_dict)
    with torch.no_grad():
        x = torch.from_numpy(feature_map).permute(0, 4, 1, 2, 3).contiguous()
        x = _unit(sd, "logits", F.avg_pool3d(x, (2, 7, 7), stride=(1, 1, 1)))
        return x.squeeze(3).squeeze(3).mean(dim=2).numpy()


def torch_logits(state_dict, clip: np.ndarray, eps: float = EPSILON) -> np.ndarray:
    """Logits (B, classes) of clips (B, T, 224, 224, 3)."""
    return torch_head(state_dict, torch_features(state_dict, clip, eps))


def make_reference(path: str = REFERENCE_FILE) -> None:
    weights = random_state_dict()
    np.savez(
        path,
        features=torch_features(weights, reference_clip()),
        head=torch_head(weights, reference_map()),
    )
    print(f"Wrote {path}")


if __name__ == "__main__":
    make_reference()
