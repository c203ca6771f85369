"""Keeps experiments/benchmarks/trainer_overhead.py working: its flowjax side on the smoke config.

No peer environment is created or used here. The smoke run compiles two training steps and
writes checkpoints (15 to 25 s on 2 cores), so it is marked slow.
"""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "benchmarks" / "trainer_overhead.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("trainer_overhead", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_window_excludes_the_first_logging_interval(bench, tmp_path):
    lines = [
        {"step": 5, "steps_per_second": 0.5},  # holds the compilation: not counted
        {"step": 10, "steps_per_second": 10.0},
        {"step": 12, "steps_per_second": 4.0},
    ]
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(json.dumps(line) + "\n" for line in lines))
    seconds, steps = bench.window_seconds(metrics, first_step=5)
    assert steps == 7 and seconds == pytest.approx(5 / 10.0 + 2 / 4.0)


@pytest.mark.slow
def test_trainer_and_bare_step_run_on_the_smoke_config(bench):
    config = bench.load_config("smoke", timed_steps=4)  # logs at 5 and 9, saves at 4, 8, 9
    run = bench.run_trainer(config)
    assert run["final_step"] == 9 and run["window_steps"] == 4
    assert run["s_per_step"] > 0 and run["cpu_s_per_step"] > 0
    assert run["checkpoints_kept"][-1] == 9
    bare = bench.BareStep(config, num_batches=4)
    timing = bare.time()
    assert timing["s_per_step"] > 0 and timing["cpu_s_per_step"] > 0
    assert bare.compilations() == 1
