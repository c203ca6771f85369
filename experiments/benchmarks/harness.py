"""Shared machinery of the speed benchmarks in experiments/benchmarks/.

Each script there states its workloads, how one of them is run and counted, and its table:
`vs_flow_matching.py` and `vs_flow_matching_discrete.py` (flowjax next to the PyTorch reference,
flow_matching 1.0.10, workload by workload), `trainer_overhead.py` (the whole trainer, its bare
step and the reference's training loop) and `image_models.py` (the image networks, no peer).
This module holds what they do alike.

Timing. `time_calls` runs a call `warmup` times untimed (compilation for JAX, allocator warm-up
for torch), then `reps` times under `time.perf_counter`, each call followed by a sync function:
`jax.block_until_ready` for JAX, whose dispatch is asynchronous, the identity for torch on the
CPU, which is synchronous. `median_and_times` records the median (the figure the tables show),
the minimum and every time. Each script says what one timed call is and how many untimed calls
come first (`image_models.py`: one, after compiling its programs ahead of time).

FLOPs. Only the matrix multiplications are counted, 2 m k n for an (m, k) @ (k, n) product; for
a stack of Linear layers evaluated on N points that is `linear_flops` = 2 N sum(in * out), the
activations and all other elementwise work left out (each script derives its workloads' counts
from it, except `image_models.py` and `latent.py`, which take XLA's count of their compiled programs,
`flops_of`). Achieved
FLOP/s are reported in GFLOP/s (`gflops`) and as a fraction of a peak measured in the same run,
the model FLOPs utilisation (`mfu`).

The yardstick. The peak is the FLOP/s of one size x size @ size x size matmul (2 size^3 FLOPs;
`--matmul-size`, 2048 by default), after two untimed calls, median of the timed ones: in JAX
(`jax_matmul`: float32 on two standard-normal operands, or bfloat16 on all-ones operands with
float32 accumulation) and, for the peer, in torch (`torch_matmul`: float32, standard-normal
operands).

The machine. `describe_machine` records the CPU model, the core counts, the host, the
thread-related environment variables and the load average at the start (`os.getloadavg`: 1, 5
and 15 minutes); the scripts add the load average at the end (`load_averages`), and
`trainer_overhead.py` the 1-minute figure before every measurement (`load_average`). The
comparisons with the peer describe the machine, then pin JAX to the CPU (`start_on_cpu`), so
that both libraries use the same processor. `machine_tag` condenses the description to the CPU
model and the number of CPUs available to the process, e.g. `amd-epyc-2c`.

The peer. The PyTorch reference runs in its own virtual environment, by default `.peer-venv` at
the repository root (`--peer-venv`), set up if missing or incomplete with `pip install
torch==2.13.0 flow-matching==1.0.10 tqdm numpy` (`ensure_peer_venv`; on a machine where pip would
fetch a CUDA build of torch, pass `--torch-index-url https://download.pytorch.org/whl/cpu`).
A script invokes itself there with `--peer --exchange DIR` (`run_peer`), DIR a temporary
directory: the host side writes `spec.json` (the cases and settings) and `inputs.npz` (the
shared weights and inputs), the peer side writes back `peer.json` (its environment and
timings) and `peer_outputs.npz` (arrays to compare with flowjax's, as `<workload>/<field>`).
The peer runs first, in its own process, so that no idle JAX thread pool competes with it;
`--no-peer` runs the flowjax side only. This module imports only the standard library and
NumPy at the top, and the peer side of a script imports neither jax nor flowjax. Network
weights are drawn once with NumPy, with torch's default initialisation of `nn.Linear`
(`torch_default_init`), stored in the inputs as `w{hidden}_{k}` and `b{hidden}_{k}` (kernel
of shape (in, out), bias; layer k), and copied into flax's and torch's Linear layers.

Results. Every script writes its results as JSON (`write_results`) to
`experiments/benchmarks/results/<name>_<tag>.json`, or to `--out`. For the comparisons with the
peer the tag is `--tag` or the machine tag, with `_quick` appended for `--quick` and
`_flowjax_only` for `--no-peer` (`results_path`); they print their table, and their report
starts with the benchmark, the date (UTC) and the command (`report_header`) and ends with the
table's lines. `image_models.py` tags its file with the JAX platform (`_bf16` appended for
`--bf16`) and, while it times, keeps /tmp/benchmark_running (`benchmark_running_flag`) so that
other jobs on the machine can pause.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import math
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = Path(__file__).resolve().parent / "results"
FLAG_FILE = "/tmp/benchmark_running"
PEER_PACKAGES = ("torch==2.13.0", "flow-matching==1.0.10", "tqdm", "numpy")
PEER_VERSIONS = {"torch": "2.13.0", "flow_matching": "1.0.10"}
MATMUL_WARMUP = 2
MATMUL_SEED = 0
MATMUL_DEFAULTS = {"matmul_size": (2048, 256), "matmul_reps": (10, 3)}  # (full run, --quick)
THREAD_ENV_VARS = (
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "XLA_FLAGS", "JAX_PLATFORMS"
)
# The files of the exchange directory between a script and its peer side.
SPEC_FILE = "spec.json"
INPUTS_FILE = "inputs.npz"
PEER_FILE = "peer.json"
PEER_OUTPUTS_FILE = "peer_outputs.npz"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------
# Timing, FLOPs and the matmul yardstick
# ----------------------------------------------------------------------------------------------


def time_calls(fn: Callable[[], Any], sync: Callable[[Any], Any], reps: int, warmup: int):
    """Runs fn `warmup` times untimed, then `reps` times timed; returns (times, last output)."""
    out = None
    for _ in range(warmup):
        out = sync(fn())
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        out = sync(fn())
        times.append(time.perf_counter() - start)
    return times, out


def median_and_times(times: list[float]) -> dict[str, Any]:
    return {"median_s": statistics.median(times), "min_s": min(times), "times_s": times}


def linear_flops(n: int, shapes: Sequence[tuple[int, int]]) -> int:
    """Matmul FLOPs of Linear layers of (in, out) `shapes` on n points: 2 n sum(in * out)."""
    return 2 * n * sum(a * b for a, b in shapes)


def matmul_flops(size: int) -> int:
    return 2 * size**3


def flops_of(compiled: Any) -> float:
    """XLA's FLOP count of a compiled JAX program (`compiled.cost_analysis()["flops"]`)."""
    analysis = compiled.cost_analysis()
    if isinstance(analysis, list):
        analysis = analysis[0]
    return float(analysis.get("flops", 0.0))


def gflops(flops: float, seconds: float) -> float:
    return flops / seconds / 1e9


def mfu(achieved_gflops: float, peak_gflops: float) -> float:
    """Model FLOPs utilisation: achieved FLOP/s over the measured matmul peak."""
    return achieved_gflops / peak_gflops


def _matmul_result(call: Callable[[], Any], sync: Callable[[Any], Any], size: int, reps: int):
    times, _ = time_calls(call, sync, reps, MATMUL_WARMUP)
    result = median_and_times(times)
    result["gflops"] = gflops(matmul_flops(size), result["median_s"])
    return result


def jax_matmul(size: int, reps: int, dtype: str = "float32") -> dict[str, Any]:
    """The JAX yardstick: size^3 matmul FLOP/s in float32, or bfloat16 accumulating in float32."""
    import jax
    import jax.numpy as jnp

    if dtype == "float32":
        ka, kb = jax.random.split(jax.random.key(MATMUL_SEED))
        a = jax.random.normal(ka, (size, size), jnp.float32)
        b = jax.random.normal(kb, (size, size), jnp.float32)
        matmul = jax.jit(jnp.matmul)
    elif dtype == "bfloat16":
        a = b = jnp.ones((size, size), jnp.bfloat16)
        matmul = jax.jit(lambda a, b: jnp.matmul(a, b, preferred_element_type=jnp.float32))
    else:
        raise ValueError(f"Unknown matmul dtype {dtype!r}; expected 'float32' or 'bfloat16'.")
    return _matmul_result(lambda: matmul(a, b), jax.block_until_ready, size, reps)


def torch_matmul(size: int, reps: int) -> dict[str, Any]:
    """The peer's yardstick: size^3 float32 matmul FLOP/s in torch."""
    import torch

    gen = torch.Generator().manual_seed(MATMUL_SEED)
    a = torch.randn(size, size, generator=gen)
    b = torch.randn(size, size, generator=gen)
    with torch.no_grad():
        return _matmul_result(lambda: a @ b, lambda out: out, size, reps)


# ----------------------------------------------------------------------------------------------
# The machine and the two sides' environments
# ----------------------------------------------------------------------------------------------


def load_averages() -> tuple[float, float, float] | None:
    """The 1, 5 and 15-minute load averages, where the system has them."""
    return os.getloadavg() if hasattr(os, "getloadavg") else None


def load_average() -> float | None:
    """The 1-minute load average, where the system has it."""
    averages = load_averages()
    return averages[0] if averages else None


def describe_machine() -> dict[str, Any]:
    """CPU model, core counts, host, thread-related environment variables, load average."""
    cpuinfo = Path("/proc/cpuinfo")
    model, cores = platform.processor() or platform.machine(), set()
    if cpuinfo.exists():
        physical_id = core_id = None
        for line in cpuinfo.read_text().splitlines():
            key, _, value = (part.strip() for part in line.partition(":"))
            if key == "model name":
                model = value
            elif key == "physical id":
                physical_id = value
            elif key == "core id":
                core_id = value
                cores.add((physical_id, core_id))
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu_model": model,
        "logical_cpus": os.cpu_count(),
        "physical_cores": len(cores) or None,
        "cpus_available_to_process": affinity,
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "thread_env": {name: os.environ.get(name) for name in THREAD_ENV_VARS},
        "load_average_at_start": load_averages(),
    }


def machine_tag(machine: dict[str, Any]) -> str:
    """The CPU model and the CPUs available to the process, e.g. 'amd-epyc-2c'."""
    model = re.sub(r"\((r|tm)\)|cpu|processor|@.*$", "", machine["cpu_model"], flags=re.I)
    slug = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-") or "cpu"
    return f"{slug}-{machine['cpus_available_to_process'] or machine['logical_cpus']}c"


def start_on_cpu() -> dict[str, Any]:
    """The machine's description; then JAX is kept off any accelerator, on the peer's processor."""
    machine = describe_machine()
    os.environ["JAX_PLATFORMS"] = "cpu"
    return machine


def flowjax_environment() -> dict[str, Any]:
    import importlib.metadata as md

    import jax

    return {
        "versions": {
            name: md.version(name)
            for name in ("flowjax", "jax", "jaxlib", "flax", "optax", "diffrax", "numpy")
        },
        "devices": [str(d) for d in jax.devices()],
        "threads": {
            "note": "XLA's CPU client runs one thread pool sized to the cores it may use",
            "xla_flags": os.environ.get("XLA_FLAGS"),
        },
    }


def peer_environment() -> dict[str, Any]:
    import importlib.metadata as md

    import torch

    return {
        "versions": {
            name: md.version(name) for name in ("torch", "flow_matching", "torchdiffeq", "numpy")
        },
        "devices": ["cpu"],
        "threads": {
            "torch_num_threads": torch.get_num_threads(),
            "torch_num_interop_threads": torch.get_num_interop_threads(),
            "mkldnn": torch.backends.mkldnn.is_available(),
            "mkl": torch.backends.mkl.is_available(),
            "cuda_build": torch.version.cuda,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "parallel_info": torch.__config__.parallel_info().strip().splitlines(),
        },
    }


def measure_workloads(
    side: str,
    workloads: Sequence[Any],
    run_workload: Callable[[Any], tuple[dict[str, Any], dict[str, np.ndarray]]],
    matmul_size: int,
    matmul_reps: int,
) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    """One side ('flowjax' or 'peer'): its environment with its matmul yardstick and the
    timings of every workload (`run_workload(w)` -> (timings, outputs)), and the outputs by
    workload name. A workload has a `name` and a `size` (a label)."""
    if side == "flowjax":
        env, matmul = flowjax_environment(), jax_matmul
    elif side == "peer":
        env, matmul = peer_environment(), torch_matmul
    else:
        raise ValueError(f"Unknown side {side!r}; expected 'flowjax' or 'peer'.")
    log(f"{side}: matmul {matmul_size}^3 ...")
    env["matmul"] = matmul(matmul_size, matmul_reps)
    env["workloads"], outputs = {}, {}
    for w in workloads:
        log(f"{side}: {w.name} ({w.size}) ...")
        env["workloads"][w.name], outputs[w.name] = run_workload(w)
    return env, outputs


# ----------------------------------------------------------------------------------------------
# Shared weights: drawn with NumPy, copied into flax and torch
# ----------------------------------------------------------------------------------------------


def torch_default_init(
    rng: np.random.Generator, shapes: Sequence[tuple[int, int]]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(W of shape (in, out), b) per layer, uniform(+-1/sqrt(in)) like torch's nn.Linear."""
    weights = []
    for fan_in, fan_out in shapes:
        bound = 1.0 / math.sqrt(fan_in)
        w = rng.uniform(-bound, bound, size=(fan_in, fan_out)).astype(np.float32)
        b = rng.uniform(-bound, bound, size=(fan_out,)).astype(np.float32)
        weights.append((w, b))
    return weights


def store_linear_layers(
    arrays: dict[str, np.ndarray], hidden: int, layers: Sequence[tuple[np.ndarray, np.ndarray]]
) -> None:
    """Puts the layers of the network of width `hidden` into `arrays`, as 'w{h}_{k}', 'b{h}_{k}'."""
    for k, (w, b) in enumerate(layers):
        arrays[f"w{hidden}_{k}"], arrays[f"b{hidden}_{k}"] = w, b


def stored_linear_layers(
    arrays: dict[str, np.ndarray], hidden: int, num_layers: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The first `num_layers` (W, b) of the network of width `hidden` stored in `arrays`."""
    return [(arrays[f"w{hidden}_{k}"], arrays[f"b{hidden}_{k}"]) for k in range(num_layers)]


def set_flax_linear_weights(layers: Sequence[Any], weights) -> None:
    """Copies (W of shape (in, out), b) pairs into flax `nnx.Linear` layers, in order."""
    import jax.numpy as jnp

    for layer, (w, b) in zip(layers, weights, strict=True):
        layer.kernel[...] = jnp.asarray(w)
        layer.bias[...] = jnp.asarray(b)


def torch_swish_mlp(weights):
    """`nn.Sequential` of `nn.Linear` layers holding (W of shape (in, out), b) pairs, with Swish
    (`nn.SiLU`) between them. Each layer is built (drawing torch's default initialisation from
    its global generator) before the weights are copied in."""
    import torch
    from torch import nn

    layers: list[nn.Module] = []
    for k, (w, b) in enumerate(weights):
        linear = nn.Linear(*w.shape)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(w.T.copy()))
            linear.bias.copy_(torch.from_numpy(b))
        layers.append(linear)
        if k < len(weights) - 1:
            layers.append(nn.SiLU())
    return nn.Sequential(*layers)


# ----------------------------------------------------------------------------------------------
# The peer: its virtual environment and the exchange with it
# ----------------------------------------------------------------------------------------------


def add_peer_arguments(parser: argparse.ArgumentParser) -> None:
    """--peer-venv, --torch-index-url, --no-peer, and the internal --peer and --exchange."""
    add = parser.add_argument
    add("--peer-venv", type=Path, default=REPO_ROOT / ".peer-venv", help="the peer's venv")
    add("--torch-index-url", default=None, help="extra pip index for torch (e.g. CPU builds)")
    add("--no-peer", action="store_true", help="run the flowjax side only")
    add("--peer", action="store_true", help=argparse.SUPPRESS)  # run the peer side, internal
    add("--exchange", type=Path, default=None, help=argparse.SUPPRESS)


def peer_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def peer_is_ready(python: Path) -> bool:
    check = (
        "import importlib.metadata as md, numpy, torch, flow_matching; "
        f"v = {PEER_VERSIONS!r}; "
        "assert torch.__version__.split('+')[0] == v['torch'], torch.__version__; "
        "assert md.version('flow_matching') == v['flow_matching']"
    )
    if not python.exists():
        return False
    return subprocess.run([str(python), "-c", check], capture_output=True).returncode == 0


def ensure_peer_venv(venv: Path, torch_index_url: str | None) -> Path:
    """The peer's interpreter, creating the virtual environment and installing it if needed."""
    python = peer_python(venv)
    if peer_is_ready(python):
        return python
    if not python.exists():
        log(f"Creating the peer environment in {venv} ...")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    command = [str(python), "-m", "pip", "install", *PEER_PACKAGES]
    if torch_index_url:
        command += ["--extra-index-url", torch_index_url]
    log("Installing the peer: " + " ".join(command[3:]))
    subprocess.run(command, check=True)
    if not peer_is_ready(python):
        raise RuntimeError(
            f"The peer environment {venv} still lacks {PEER_PACKAGES} after installing; "
            "delete it and rerun, or pass --peer-venv to another path."
        )
    return python


def run_peer(
    args: argparse.Namespace,
    script: str | Path,
    spec: dict[str, Any],
    inputs: dict[str, np.ndarray] | None = None,
) -> tuple[dict[str, Any] | None, dict[str, dict[str, np.ndarray]]]:
    """Runs `script --peer` in the peer environment of `args` on `spec` (plain JSON) and
    `inputs`; returns its `peer.json` record and its outputs by workload name, or (None, {})
    with `--no-peer`."""
    if args.no_peer:
        return None, {}
    python = ensure_peer_venv(args.peer_venv, args.torch_index_url)
    script = Path(script).resolve()
    outputs: dict[str, dict[str, np.ndarray]] = {}
    with tempfile.TemporaryDirectory(prefix=f"{script.stem}_") as tmp:
        exchange = Path(tmp)
        (exchange / SPEC_FILE).write_text(json.dumps(spec))
        if inputs is not None:
            np.savez(exchange / INPUTS_FILE, **inputs)
        command = [str(python), str(script), "--peer", "--exchange", str(exchange)]
        subprocess.run(command, check=True)
        env = json.loads((exchange / PEER_FILE).read_text())
        if (exchange / PEER_OUTPUTS_FILE).exists():
            with np.load(exchange / PEER_OUTPUTS_FILE) as data:
                for key in data.files:
                    name, field = key.split("/")
                    outputs.setdefault(name, {})[field] = data[key]
    return env, outputs


def read_exchange(exchange: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """On the peer side: the spec and the inputs (empty when none were sent)."""
    spec = json.loads((exchange / SPEC_FILE).read_text())
    inputs: dict[str, np.ndarray] = {}
    if (exchange / INPUTS_FILE).exists():
        with np.load(exchange / INPUTS_FILE) as data:
            inputs = dict(data)
    return spec, inputs


def write_exchange(
    exchange: Path,
    env: dict[str, Any],
    outputs: dict[str, dict[str, np.ndarray]] | None = None,
) -> None:
    """On the peer side: the record for `peer.json` and the outputs by workload name."""
    if outputs is not None:
        arrays = {
            f"{name}/{field}": array
            for name, fields in outputs.items()
            for field, array in fields.items()
        }
        np.savez(exchange / PEER_OUTPUTS_FILE, **arrays)
    (exchange / PEER_FILE).write_text(json.dumps(env, indent=1))


def run_peer_workloads(
    args: argparse.Namespace,
    script: str | Path,
    workloads: Sequence[Any],
    inputs: dict[str, np.ndarray],
    **settings: Any,
) -> tuple[dict[str, Any] | None, dict[str, dict[str, np.ndarray]]]:
    """The host side of a comparison by workloads (dataclasses with `name` and `size`): the
    peer measures its matmul yardstick (`--matmul-size`, `--matmul-reps`), then every workload;
    `settings` (plain JSON) go along in the spec. Returns as `run_peer` does."""
    spec = {
        "workloads": [dataclasses.asdict(w) for w in workloads],
        "matmul_size": args.matmul_size,
        "matmul_reps": args.matmul_reps,
        **settings,
    }
    return run_peer(args, script, spec, inputs)


def peer_workloads_main(
    exchange: Path,
    workload_type: type,
    run_workload: Callable[[Any, dict[str, np.ndarray], dict[str, Any]], tuple[dict, dict]],
) -> None:
    """The peer side of `run_peer_workloads`: `run_workload(w, inputs, spec)` -> (timings,
    outputs) for every workload, after the torch matmul."""
    spec, inputs = read_exchange(exchange)
    workloads = [workload_type(**w) for w in spec["workloads"]]
    env, outputs = measure_workloads(
        "peer",
        workloads,
        lambda w: run_workload(w, inputs, spec),
        spec["matmul_size"],
        spec["matmul_reps"],
    )
    write_exchange(exchange, env, outputs)


# ----------------------------------------------------------------------------------------------
# Command-line defaults and results
# ----------------------------------------------------------------------------------------------


def add_matmul_arguments(parser: argparse.ArgumentParser) -> None:
    """--matmul-size and --matmul-reps of the yardstick; their defaults are MATMUL_DEFAULTS."""
    for name, (full, quick) in MATMUL_DEFAULTS.items():
        flag = "--" + name.replace("_", "-")
        parser.add_argument(flag, type=int, default=None, help=f"default {full}; quick {quick}")


def fill_defaults(args: argparse.Namespace, defaults: dict[str, tuple[Any, Any]]) -> None:
    """Sets every argument left at None to its default: {name: (full run, --quick)}."""
    for name, (full, quick) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)


def add_results_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--tag", default=None, help="suffix of the results file (default: CPU model, cores)")
    add("--out", type=Path, default=None, help="results JSON path (overrides --tag)")


def results_file(name: str, tag: str) -> Path:
    return RESULTS_DIR / f"{name}_{tag}.json"


def results_path(name: str, args: argparse.Namespace, machine: dict[str, Any]) -> Path:
    """`--out`, or the results file of `name` tagged `--tag` or the machine tag, with `_quick`
    for `--quick` and `_flowjax_only` for `--no-peer`."""
    if args.out:
        return args.out
    suffix = ("_quick" if args.quick else "") + ("_flowjax_only" if args.no_peer else "")
    return results_file(name, (args.tag or machine_tag(machine)) + suffix)


def matmul_summary(flowjax_env: dict[str, Any], peer_env: dict[str, Any] | None) -> str:
    """The yardsticks of a comparison, for the foot of its table."""
    summary = f"matmul GFLOP/s: flowjax/JAX {flowjax_env['matmul']['gflops']:.1f}"
    if peer_env:
        summary += f", peer/torch {peer_env['matmul']['gflops']:.1f}"
    return summary


def report_header(benchmark: str) -> dict[str, Any]:
    """The first fields of a report: what was measured, when (UTC), by which command."""
    return {
        "benchmark": benchmark,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }


def write_results(path: str | Path, report: dict[str, Any], table: str | None = None) -> None:
    """Prints `table` and writes `report` as JSON to `path`, with the table's lines last."""
    if table is not None:
        print(table)
        report = {**report, "table": table.splitlines()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n")
    log(f"Wrote {path}")


@contextlib.contextmanager
def benchmark_running_flag() -> Iterator[None]:
    """While inside: /tmp/benchmark_running holds this process's id, so that other jobs on the
    machine can pause."""
    with open(FLAG_FILE, "w") as f:
        f.write(f"{os.getpid()}\n")
    try:
        yield
    finally:
        os.remove(FLAG_FILE)
