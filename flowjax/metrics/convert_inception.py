"""Converts pytorch-fid's FID Inception weights to the .npz that `flowjax.metrics.inception` loads.

The FID Inception network (Heusel et al., 2017; TensorFlow's 2015-12-05 InceptionV3 graph) was
ported to a torch state dict by pytorch-fid: `pt_inception-2015-12-05-6726825d.pth`, from
https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth

Usage (torch needed here only; this file imports nothing from flowjax, so it also runs as a
plain script in an environment that has torch but not JAX):

    python flowjax/metrics/convert_inception.py pt_inception-2015-12-05-6726825d.pth \
        ~/.cache/flowjax/inception_fid.npz

Name mapping: module names are lower-cased and joined with "/" (Mixed_6b.branch7x7_2 ->
mixed_6b/branch7x7_2); conv.weight (O, I, kh, kw) -> conv/kernel (kh, kw, I, O); bn.weight,
bn.bias, bn.running_mean, bn.running_var -> bn/scale, bn/bias, bn/mean, bn/var; fc.weight
(1008, 2048) -> fc/kernel (2048, 1008); fc.bias -> fc/bias. bn.num_batches_tracked is dropped.
`flowjax.metrics.load_inception` checks every name and shape against the network.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping

import numpy as np

_LEAF_NAMES = {
    "conv.weight": "conv/kernel",
    "bn.weight": "bn/scale",
    "bn.bias": "bn/bias",
    "bn.running_mean": "bn/mean",
    "bn.running_var": "bn/var",
}


def convert_state_dict(state_dict: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The flowjax arrays (name -> float32 array) of a pytorch-fid Inception state dict."""
    converted = {}
    for key, value in state_dict.items():
        value = np.asarray(value)
        if key.endswith("num_batches_tracked"):
            continue
        if key == "fc.weight":
            name, value = "fc/kernel", value.T
        elif key == "fc.bias":
            name = "fc/bias"
        else:
            parts = key.split(".")
            leaf = ".".join(parts[-2:])
            if len(parts) < 3 or leaf not in _LEAF_NAMES:
                raise ValueError(f"Unexpected tensor {key!r} in the Inception state dict.")
            name = "/".join(parts[:-2]).lower() + "/" + _LEAF_NAMES[leaf]
            if leaf == "conv.weight":
                if value.ndim != 4:
                    raise ValueError(
                        f"{key!r} should be a (O, I, kh, kw) kernel, got {value.shape}."
                    )
                value = value.transpose(2, 3, 1, 0)
        converted[name] = np.ascontiguousarray(value, dtype=np.float32)
    return converted


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", help="pt_inception-2015-12-05-6726825d.pth (a torch state dict)")
    parser.add_argument("output", help="the .npz to write, e.g. ~/.cache/flowjax/inception_fid.npz")
    args = parser.parse_args(argv)
    import torch  # only the converter needs torch

    if not os.path.isfile(args.input):
        raise FileNotFoundError(f"No torch weights file at {args.input!r}.")
    state_dict = torch.load(args.input, map_location="cpu", weights_only=True)
    arrays = convert_state_dict({k: v.detach().cpu().numpy() for k, v in state_dict.items()})
    output = os.path.expanduser(args.output)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    np.savez(output, **arrays)
    print(f"Wrote {len(arrays)} arrays to {output}")


if __name__ == "__main__":
    main()
