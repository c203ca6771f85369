"""The vmapped deep ensemble (`flowjax.models.uncertainty`, method "ensemble": one module whose
parameters carry a leading ensemble axis) against a Python loop over the same members.

Workload: M members of the small digits classifier (`flowjax.models.small_classifier`:
convolutions of `--channels`, a hidden layer of 128) predicting one batch of `--batch` 8x8x1
inputs. The vmapped side is one jitted call of `model.predict` (all members in one program);
the loop side takes each member's slice of the same parameters as a single network and calls
one jitted network M times (same weights, same batch; the outputs are checked equal). Reported:
members per second (M / the median time of a full prediction) and the speed-up, with the load
average; results in results/uncertainty_ensemble_<machine>.json.

    nice -n 5 .venv/bin/python experiments/benchmarks/uncertainty_ensemble.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--channels", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    machine = harness.start_on_cpu()
    import jax
    from flax import nnx

    from flowjax.models.uncertainty import small_classifier

    reps = 2 if args.quick else args.reps
    x = jax.random.normal(jax.random.key(0), (args.batch, 8, 8, 1))
    rows = []
    for m in args.members:
        model = small_classifier((8, 8, 1), num_classes=10, rngs=nnx.Rngs(0), method="ensemble",
                                 ensemble_size=m, conv_channels=tuple(args.channels),
                                 hidden_dim=128)
        graphdef, state = nnx.split(model)
        vmapped = jax.jit(lambda s, x: nnx.merge(graphdef, s).predict(x, jax.random.key(0)))
        member_def, stacked = nnx.split(model.members)
        single = jax.jit(lambda s, x: jax.nn.softmax(nnx.merge(member_def, s)(x, False, None)))
        slices = [jax.tree.map(lambda a, i=i: a[i], stacked) for i in range(m)]

        def loop():
            return [single(s, x) for s in slices]

        sync = jax.block_until_ready
        t_vmap, out_vmap = harness.time_calls(lambda: vmapped(state, x), sync, reps, 2)
        t_loop, out_loop = harness.time_calls(loop, sync, reps, 2)
        np.testing.assert_allclose(np.asarray(out_vmap),
                                   np.stack([np.asarray(o) for o in out_loop], 1), atol=1e-5)
        v, lp = np.median(t_vmap), np.median(t_loop)
        rows.append({"members": m, "batch": args.batch, "vmapped_s": float(v),
                     "loop_s": float(lp), "vmapped_members_per_s": m / v,
                     "loop_members_per_s": m / lp, "speedup": lp / v,
                     "load_average": harness.load_averages()})
        harness.log(f"M={m}: vmapped {m / v:.1f} members/s, loop {m / lp:.1f} members/s, "
                    f"speed-up {lp / v:.2f}x, load {harness.load_averages()}")
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                       f"uncertainty_ensemble_{harness.machine_tag(machine)}.json")
    if not args.quick:
        with open(out, "w") as f:
            json.dump({"machine": machine, "results": rows}, f, indent=2)
        harness.log(f"wrote {out}")


if __name__ == "__main__":
    main()
