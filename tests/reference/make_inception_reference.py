"""Builds tests/data/inception_fid_torch_reference.npz: the FID Inception network run in torch.

pytorch-fid's FID Inception (`pt_inception-2015-12-05-6726825d.pth`, TensorFlow's 2015-12-05
InceptionV3 graph) cannot be downloaded here, so this script takes a state dict with its names
and shapes and random values (`tests/inception_testing.random_torch_weights`), and

1. saves it as a torch .pth and converts it with `flowjax/metrics/convert_inception.py` (its
   torch-loading path), checking the converted arrays against the state dict;
2. runs the network in torch, written below with torch.nn.functional from the architecture
   of pytorch-fid's `fid_inception_v3` (torchvision InceptionV3 layers, FID variants of the A, C
   and E blocks), on `reference_inputs()` resized by `F.interpolate(bilinear,
   align_corners=False)` to RESIZE_TO, and stores the pool_3 features and the logits;
3. where torchvision is installed, checks the names, shapes and block wiring against its
   InceptionV3 (`check_against_torchvision`).

`tests/test_metrics_fid_inception.py` regenerates the same weights in NumPy, converts them without
torch, and checks the Flax network against the stored outputs. Run it from the repository root
in an environment with torch and NumPy (JAX is not needed):

    python tests/reference/make_inception_reference.py [OUTPUT.npz]
"""

from __future__ import annotations

import os
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # tests/
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "flowjax", "metrics"))

import convert_inception  # noqa: E402
import inception_testing  # noqa: E402


def conv_bn_relu(w, name, x, stride=1, padding=0):
    y = F.conv2d(x, w[name + ".conv.weight"], stride=stride, padding=padding)
    y = F.batch_norm(
        y,
        w[name + ".bn.running_mean"],
        w[name + ".bn.running_var"],
        w[name + ".bn.weight"],
        w[name + ".bn.bias"],
        training=False,
        eps=1e-3,
    )
    return F.relu(y)


def avg_pool_unpadded(x):
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


def block_a(w, p, x):
    b1 = conv_bn_relu(w, p + ".branch1x1", x)
    b5 = conv_bn_relu(w, p + ".branch5x5_2", conv_bn_relu(w, p + ".branch5x5_1", x), padding=2)
    bd = conv_bn_relu(w, p + ".branch3x3dbl_1", x)
    bd = conv_bn_relu(w, p + ".branch3x3dbl_2", bd, padding=1)
    bd = conv_bn_relu(w, p + ".branch3x3dbl_3", bd, padding=1)
    bp = conv_bn_relu(w, p + ".branch_pool", avg_pool_unpadded(x))
    return torch.cat([b1, b5, bd, bp], 1)


def block_b(w, p, x):
    b3 = conv_bn_relu(w, p + ".branch3x3", x, stride=2)
    bd = conv_bn_relu(w, p + ".branch3x3dbl_1", x)
    bd = conv_bn_relu(w, p + ".branch3x3dbl_2", bd, padding=1)
    bd = conv_bn_relu(w, p + ".branch3x3dbl_3", bd, stride=2)
    return torch.cat([b3, bd, F.max_pool2d(x, 3, stride=2)], 1)


def block_c(w, p, x):
    row, col = (0, 3), (3, 0)  # paddings of the 1x7 and 7x1 convolutions
    b1 = conv_bn_relu(w, p + ".branch1x1", x)
    b7 = conv_bn_relu(w, p + ".branch7x7_1", x)
    b7 = conv_bn_relu(w, p + ".branch7x7_2", b7, padding=row)
    b7 = conv_bn_relu(w, p + ".branch7x7_3", b7, padding=col)
    bd = conv_bn_relu(w, p + ".branch7x7dbl_1", x)
    for i, pad in zip(range(2, 6), (col, row, col, row)):
        bd = conv_bn_relu(w, f"{p}.branch7x7dbl_{i}", bd, padding=pad)
    bp = conv_bn_relu(w, p + ".branch_pool", avg_pool_unpadded(x))
    return torch.cat([b1, b7, bd, bp], 1)


def block_d(w, p, x):
    b3 = conv_bn_relu(w, p + ".branch3x3_2", conv_bn_relu(w, p + ".branch3x3_1", x), stride=2)
    b7 = conv_bn_relu(w, p + ".branch7x7x3_1", x)
    b7 = conv_bn_relu(w, p + ".branch7x7x3_2", b7, padding=(0, 3))
    b7 = conv_bn_relu(w, p + ".branch7x7x3_3", b7, padding=(3, 0))
    b7 = conv_bn_relu(w, p + ".branch7x7x3_4", b7, stride=2)
    return torch.cat([b3, b7, F.max_pool2d(x, 3, stride=2)], 1)


def block_e(w, p, x, max_pool):
    b1 = conv_bn_relu(w, p + ".branch1x1", x)
    b3 = conv_bn_relu(w, p + ".branch3x3_1", x)
    b3 = torch.cat(
        [
            conv_bn_relu(w, p + ".branch3x3_2a", b3, padding=(0, 1)),
            conv_bn_relu(w, p + ".branch3x3_2b", b3, padding=(1, 0)),
        ],
        1,
    )
    bd = conv_bn_relu(w, p + ".branch3x3dbl_1", x)
    bd = conv_bn_relu(w, p + ".branch3x3dbl_2", bd, padding=1)
    bd = torch.cat(
        [
            conv_bn_relu(w, p + ".branch3x3dbl_3a", bd, padding=(0, 1)),
            conv_bn_relu(w, p + ".branch3x3dbl_3b", bd, padding=(1, 0)),
        ],
        1,
    )
    pooled = F.max_pool2d(x, 3, stride=1, padding=1) if max_pool else avg_pool_unpadded(x)
    bp = conv_bn_relu(w, p + ".branch_pool", pooled)
    return torch.cat([b1, b3, bd, bp], 1)


def fid_inception(w, x):
    """(pool (B, 2048), logits (B, 1008)) of NCHW images x in [-1, 1]."""
    x = conv_bn_relu(w, "Conv2d_1a_3x3", x, stride=2)
    x = conv_bn_relu(w, "Conv2d_2a_3x3", x)
    x = conv_bn_relu(w, "Conv2d_2b_3x3", x, padding=1)
    x = F.max_pool2d(x, 3, stride=2)
    x = conv_bn_relu(w, "Conv2d_3b_1x1", x)
    x = conv_bn_relu(w, "Conv2d_4a_3x3", x)
    x = F.max_pool2d(x, 3, stride=2)
    for name in ("Mixed_5b", "Mixed_5c", "Mixed_5d"):
        x = block_a(w, name, x)
    x = block_b(w, "Mixed_6a", x)
    for name in ("Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"):
        x = block_c(w, name, x)
    x = block_d(w, "Mixed_7a", x)
    x = block_e(w, "Mixed_7b", x, max_pool=False)
    x = block_e(w, "Mixed_7c", x, max_pool=True)
    pool = F.adaptive_avg_pool2d(x, (1, 1)).flatten(1)
    return pool, F.linear(pool, w["fc.weight"], w["fc.bias"])


def check_against_torchvision(weights) -> None:
    """Where torchvision is installed: the state dict loads strictly into torchvision's
    InceptionV3 (num_classes=1008, no aux head: the module pytorch-fid patches), and the blocks
    computed above agree with torchvision's, except the pool branches that the FID variant
    changes (A, C, E: average pools that ignore padding; Mixed_7c: a max pool)."""
    import torchvision

    net = torchvision.models.inception_v3(
        weights=None, aux_logits=False, num_classes=1008, init_weights=False
    )
    net.load_state_dict(weights, strict=True)
    net.eval()
    generator = torch.Generator().manual_seed(0)
    pool_channels = {"a": None, "c": 192, "e": 192}
    cases = [
        ("Mixed_5b", 192, 35, "a", block_a),
        ("Mixed_6a", 288, 35, "b", block_b),
        ("Mixed_6b", 768, 17, "c", block_c),
        ("Mixed_7a", 768, 17, "d", block_d),
        ("Mixed_7b", 1280, 8, "e", lambda w, p, x: block_e(w, p, x, max_pool=False)),
        ("Mixed_7c", 2048, 8, "e", lambda w, p, x: block_e(w, p, x, max_pool=True)),
    ]
    with torch.no_grad():
        for name, cin, size, kind, block in cases:
            x = torch.rand(2, cin, size, size, generator=generator)
            ours, theirs = block(weights, name, x), getattr(net, name)(x)
            assert ours.shape == theirs.shape, (name, ours.shape, theirs.shape)
            if kind in pool_channels:  # the pool branch comes last in the concatenation
                cut = pool_channels[kind] or weights[name + ".branch_pool.conv.weight"].shape[0]
                ours, theirs = ours[:, :-cut], theirs[:, :-cut]
            torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)
        x = torch.rand(2, 3, 75, 75, generator=generator)
        stem = conv_bn_relu(weights, "Conv2d_1a_3x3", x, stride=2)
        torch.testing.assert_close(stem, net.Conv2d_1a_3x3(x), rtol=1e-4, atol=1e-5)
    print(f"torchvision {torchvision.__version__}: strict load and block checks passed")


def main(output: str = inception_testing.REFERENCE_FILE) -> None:
    weights = {k: torch.from_numpy(v) for k, v in inception_testing.random_torch_weights().items()}
    try:
        check_against_torchvision(weights)
    except ImportError:
        print("torchvision not installed: the layout is not checked against its InceptionV3")
    with tempfile.TemporaryDirectory() as tmp:
        pth, npz = os.path.join(tmp, "weights.pth"), os.path.join(tmp, "converted.npz")
        torch.save(weights, pth)
        convert_inception.main([pth, npz])
        with np.load(npz) as converted:
            kernel = converted["mixed_6b/branch7x7_2/conv/kernel"]  # torch (O, I, 1, 7)
            expected = weights["Mixed_6b.branch7x7_2.conv.weight"].numpy().transpose(2, 3, 1, 0)
            assert np.array_equal(kernel, expected), "conv kernel not transposed to (kh, kw, I, O)"
            assert np.array_equal(converted["fc/kernel"], weights["fc.weight"].numpy().T)
            assert len(converted.files) == len(inception_testing.torch_layout())
    images = torch.from_numpy(inception_testing.reference_inputs()).permute(0, 3, 1, 2)
    size = inception_testing.RESIZE_TO
    resized = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    with torch.no_grad():
        pool, logits = fid_inception(weights, resized)
    np.savez(
        output,
        resized_first=resized[:1].permute(0, 2, 3, 1).numpy(),
        pool=pool.numpy(),
        logits=logits.numpy(),
        torch_version=torch.__version__,
    )
    print(f"Wrote {output}: pool std {pool.std():.3f}, logits std {logits.std():.3f}")


if __name__ == "__main__":
    main(*sys.argv[1:])
