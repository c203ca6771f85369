"""FVD feature extraction speed: clips per second through Inception-I3D (Carreira & Zisserman,
2017) as the Frechet Video Distance (Unterthiner et al., 2018) uses it.

On the machinery of `harness.py` (machine, load, matmul yardstick, results JSON). The workload
is `flowjax.metrics.fvd.fvd_feature_fn` on `flowjax.models.i3d.InceptionI3d` with random weights
(the speed does not depend on them): a batch of `--batch` uint8 clips of `--frames` frames at
`--size` x `--size` (MeBT's FVD16 setting: 16 frames at 128 px), each frame resized bilinearly
to 224 x 224 inside the jitted program, then the 400 logits averaged over time, copied back to
the host. One timed call = one batch, host to host. First the compile (timed separately), one
untimed call, then `--reps` timed calls, median. FLOPs are XLA's count of the compiled program
(`harness.flops_of`), so GFLOP/s and MFU (over the float32 2048^3 matmul measured in the same
run) say how well the CPU is used.

    .venv/bin/python experiments/benchmarks/fvd_throughput.py            # the table
    .venv/bin/python experiments/benchmarks/fvd_throughput.py --quick    # a smoke check

Results: experiments/benchmarks/results/fvd_throughput_<machine tag>.json (`--tag`, `--out`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
import harness  # noqa: E402

DEFAULTS = {"batch": (4, 1), "frames": (16, 9), "size": (128, 64), "reps": (3, 1)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--quick", action="store_true", help="one small clip, one repetition")
    for name in DEFAULTS:
        add(f"--{name}", type=int, default=None, help=f"default {DEFAULTS[name][0]}")
    harness.add_matmul_arguments(parser)
    harness.add_results_arguments(parser)
    args = parser.parse_args(argv)
    harness.fill_defaults(args, {**DEFAULTS, **harness.MATMUL_DEFAULTS})
    machine = harness.describe_machine()

    import jax
    from flax import nnx

    from flowjax.metrics import fvd
    from flowjax.models.i3d import InceptionI3d

    network = InceptionI3d(rngs=nnx.Rngs(0))
    clips = np.random.default_rng(0).integers(
        0, 256, (args.batch, args.frames, args.size, args.size, 3), dtype=np.uint8
    )
    features = fvd.fvd_feature_fn(network)
    graphdef, state = nnx.split(network)
    start = time.perf_counter()
    compiled = fvd._features.lower(graphdef, state, clips, fvd.INPUT_SIZE, (-1.0, 1.0), True).compile()
    compile_s = time.perf_counter() - start
    flops = harness.flops_of(compiled)
    times, out = harness.time_calls(lambda: features(clips), lambda x: x, args.reps, 1)
    assert out.shape == (args.batch, 400) and np.all(np.isfinite(out))
    timing = harness.median_and_times(times)
    matmul = harness.jax_matmul(args.matmul_size, args.matmul_reps)
    achieved = harness.gflops(flops, timing["median_s"])
    clips_per_s = args.batch / timing["median_s"]
    load_end = harness.load_averages()
    table = "\n".join([
        "| clips | frames | size -> 224 | clips/s | s / batch | GFLOP / clip | GFLOP/s (MFU) | compile s |",
        "|---|---|---|---|---|---|---|---|",
        f"| {args.batch} | {args.frames} | {args.size} | {clips_per_s:.3f} | "
        f"{timing['median_s']:.2f} | {flops / args.batch / 1e9:.1f} | {achieved:.1f} "
        f"({harness.mfu(achieved, matmul['gflops']):.0%}) | {compile_s:.1f} |",
        f"JAX {jax.__version__} on {jax.devices()[0].platform}; float32 matmul "
        f"{matmul['gflops']:.1f} GFLOP/s; load average (1, 5, 15 min) at start "
        f"{machine['load_average_at_start']}, at end {load_end}",
    ])
    report = {
        **harness.report_header("fvd_throughput"),
        "machine": machine,
        "settings": {k: getattr(args, k) for k in DEFAULTS},
        "compile_s": compile_s,
        "flops_per_batch": flops,
        "timing": timing,
        "clips_per_s": clips_per_s,
        "matmul": matmul,
        "load_average_at_end": load_end,
    }
    tag = (args.tag or harness.machine_tag(machine)) + ("_quick" if args.quick else "")
    harness.write_results(args.out or harness.results_file("fvd_throughput", tag), report, table)


if __name__ == "__main__":
    main()
