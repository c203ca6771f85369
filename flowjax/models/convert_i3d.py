"""Loads the Kinetics-400 I3D of FVD from the PyTorch state dict `i3d_pretrained_400.pt` into
`flowjax.models.i3d.InceptionI3d` (Carreira & Zisserman, 2017; the features of the Frechet
Video Distance, Unterthiner et al., 2018).

The file is the TF-Hub `deepmind/i3d-kinetics-400` module (the network of the reference FVD
code) converted by VideoGPT / TATS to the key layout of piergiaj/pytorch-i3d; TATS and MeBT
compute their FVDs with it. Nothing is downloaded here. On a machine with internet access get
it from TATS's `tats/download.py` (`load_i3d_pretrained`: Google Drive file id
1mQK8KD8G6UWRa5t87SRMm5PVXtlpneJT, saved as i3d_pretrained_400.pt), copy it here and pass its
path, set $FLOWJAX_I3D_WEIGHTS, or put it at ~/.cache/flowjax/i3d_pretrained_400.pt. Reading a
.pt needs torch; without torch, turn it into an .npz once where torch is installed:

    python -m flowjax.models.convert_i3d i3d_pretrained_400.pt i3d_pretrained_400.npz

(the same arrays under the same names) and load the .npz.

Name mapping (U a unit: Conv3d_1a_7x7, Conv3d_2b_1x1, Conv3d_2c_3x3, Mixed_{3b..5c}.{b0, b1a,
b1b, b2a, b2b, b3b}, logits; lower-cased to our attribute path, "." -> nested modules):

    U.conv3d.weight (O, I, kt, kh, kw)              -> U.conv.kernel (kt, kh, kw, I, O), scaled
    U.bn.weight / bias / running_mean / running_var -> folded: s = weight / sqrt(var + eps),
                                                       kernel * s, conv.bias = bias - mean s
    logits.conv3d.weight / .bias                    -> logits.conv.kernel / .bias (no batch norm)

`num_batches_tracked` buffers are skipped. Batch-norm epsilon: 1e-5 by default, the value of
the TATS / VideoGPT / MeBT module that loads this file (their FVDs were measured so); the
TF-Hub graph itself (Sonnet's BatchNorm) uses 1e-3, with moving variances far above both, so the
two differ little; pass `epsilon=1e-3` to follow the TensorFlow graph. Missing, unexpected and
misshapen tensors are reported together in one ValueError.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping

import jax.numpy as jnp
import numpy as np
from flax import nnx

from flowjax.models.i3d import NUM_CLASSES, InceptionI3d

WEIGHTS_FILE = "i3d_pretrained_400.pt"
WEIGHTS_ENV = "FLOWJAX_I3D_WEIGHTS"
DEFAULT_WEIGHTS_PATH = "~/.cache/flowjax/" + WEIGHTS_FILE
BATCH_NORM_EPSILON = 1e-5
_HOW_TO_GET = (
    f"Nothing is downloaded here: on a machine with internet access fetch {WEIGHTS_FILE} as "
    f"TATS's tats/download.py does (Google Drive id 1mQK8KD8G6UWRa5t87SRMm5PVXtlpneJT), copy it "
    f"here and pass its path, set ${WEIGHTS_ENV}, or put it at {DEFAULT_WEIGHTS_PATH}."
)
_BATCH_NORM = ("weight", "bias", "running_mean", "running_var")


def weights_path(path: str | os.PathLike | None = None) -> str:
    """The weights file: `path`, else $FLOWJAX_I3D_WEIGHTS, else DEFAULT_WEIGHTS_PATH."""
    return os.path.expanduser(os.fspath(path or os.environ.get(WEIGHTS_ENV) or DEFAULT_WEIGHTS_PATH))


def require_weights(path: str | os.PathLike | None = None) -> str:
    """The resolved weights path; FileNotFoundError saying where to get the file if missing."""
    resolved = weights_path(path)
    if not os.path.isfile(resolved):
        raise FileNotFoundError(f"I3D weights not found at {resolved!r}. {_HOW_TO_GET}")
    return resolved


def read_state_dict(path: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """The tensors (torch names -> arrays) of a .pt state dict (needs torch) or of an .npz."""
    resolved = require_weights(path)
    if resolved.endswith(".npz"):
        with np.load(resolved) as archive:
            return {name: archive[name] for name in archive.files}
    try:
        import torch
    except ImportError as error:
        raise FileNotFoundError(
            f"Reading {resolved!r} needs torch, which is not installed. Where torch is, run "
            f"`python -m flowjax.models.convert_i3d {resolved} i3d_pretrained_400.npz` and load "
            f"the .npz instead."
        ) from error
    state_dict = torch.load(resolved, map_location="cpu", weights_only=True)
    return {name: value.detach().float().numpy() for name, value in state_dict.items()}


def convert_state_dict(
    state_dict: Mapping[str, np.ndarray], *, epsilon: float = BATCH_NORM_EPSILON
) -> dict[tuple[str, ...], np.ndarray]:
    """Our state paths -> float32 arrays for a piergiaj-layout state dict, batch norm folded
    into each convolution (module docstring). Checks nothing against a network: see
    `i3d_from_state_dict`."""
    if not epsilon > 0:
        raise ValueError(f"The batch-norm epsilon must be > 0, got {epsilon!r}.")
    arrays = {k: np.asarray(v, np.float64) for k, v in state_dict.items()
              if not k.endswith("num_batches_tracked")}
    converted, missing = {}, []
    for key in [k for k in arrays if k.endswith(".conv3d.weight")]:
        unit = key.removesuffix(".conv3d.weight")
        kernel = arrays.pop(key)
        if kernel.ndim != 5:
            raise ValueError(f"{key!r} should be an (O, I, kt, kh, kw) kernel, got {kernel.shape}.")
        if unit == "logits":  # the only unit with a bias and no batch norm
            bias = arrays.pop("logits.conv3d.bias", None)
            missing += ["logits.conv3d.bias"] if bias is None else []
        else:
            norm = {name: arrays.pop(f"{unit}.bn.{name}", None) for name in _BATCH_NORM}
            missing += [f"{unit}.bn.{name}" for name, value in norm.items() if value is None]
            if any(value is None for value in norm.values()):
                continue
            scale = norm["weight"] / np.sqrt(norm["running_var"] + epsilon)
            kernel = kernel * scale[:, None, None, None, None]
            bias = norm["bias"] - norm["running_mean"] * scale
        if bias is None:
            continue
        path = tuple(unit.lower().split(".")) + ("conv",)
        converted[path + ("kernel",)] = kernel.transpose(2, 3, 4, 1, 0).astype(np.float32)
        converted[path + ("bias",)] = bias.astype(np.float32)
    if missing:
        raise ValueError(
            f"The I3D state dict lacks {len(missing)} tensors: {missing[:8]}. {_HOW_TO_GET}"
        )
    if arrays:
        raise ValueError(
            f"Unexpected tensors in the I3D state dict (no conv3d.weight of their unit): "
            f"{sorted(arrays)[:8]} ({len(arrays)})."
        )
    return converted


def i3d_from_state_dict(
    state_dict: Mapping[str, np.ndarray], *, epsilon: float = BATCH_NORM_EPSILON
) -> InceptionI3d:
    """The `InceptionI3d` holding a piergiaj-layout state dict (its class count read from
    logits.conv3d.weight); ValueError listing every missing, unexpected or misshapen tensor."""
    logits = state_dict.get("logits.conv3d.weight")
    num_classes = NUM_CLASSES if logits is None else int(np.shape(logits)[0])
    converted = convert_state_dict(state_dict, epsilon=epsilon)
    abstract = nnx.eval_shape(lambda: InceptionI3d(num_classes, rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(abstract)
    flat = nnx.to_flat_state(state)
    shapes = {tuple(map(str, p)): leaf.shape for p, leaf in flat}
    problems = []
    missing = sorted(".".join(p) for p in set(shapes) - set(converted))
    unexpected = sorted(".".join(p) for p in set(converted) - set(shapes))
    if missing:
        problems.append(f"missing {len(missing)} (our names): {', '.join(missing[:8])}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)}: {', '.join(unexpected[:8])}")
    problems += [
        f"{'.'.join(p)} {converted[p].shape} (expected {shapes[p]})"
        for p in sorted(set(shapes) & set(converted))
        if converted[p].shape != shapes[p]
    ]
    if problems:
        raise ValueError(
            "The state dict does not match Inception-I3D (piergiaj/pytorch-i3d key layout, "
            f"{num_classes} classes): " + "; ".join(problems) + "."
        )
    for leaf_path, variable in flat:
        variable.set_value(jnp.asarray(converted[tuple(map(str, leaf_path))]))
    return nnx.merge(graphdef, nnx.from_flat_state(flat))


def load_i3d(
    path: str | os.PathLike | None = None, *, epsilon: float = BATCH_NORM_EPSILON
) -> InceptionI3d:
    """The I3D of `i3d_pretrained_400.pt` (or its .npz): `path`, else $FLOWJAX_I3D_WEIGHTS, else
    ~/.cache/flowjax/i3d_pretrained_400.pt. FileNotFoundError saying where to get it if missing."""
    return i3d_from_state_dict(read_state_dict(path), epsilon=epsilon)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description="Write the tensors of a PyTorch I3D state dict (.pt) to an .npz (needs torch)."
    )
    parser.add_argument("input", help=f"{WEIGHTS_FILE} (a torch state dict)")
    parser.add_argument("output", help="the .npz to write")
    args = parser.parse_args(argv)
    arrays = read_state_dict(args.input)
    i3d_from_state_dict(arrays)  # every name and shape checked before anything is written
    output = os.path.expanduser(args.output)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    np.savez(output, **arrays)
    print(f"Wrote {len(arrays)} arrays to {output}")


if __name__ == "__main__":
    main()
