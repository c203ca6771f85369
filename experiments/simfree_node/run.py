"""Neural ODEs on paired data (Kim et al., 2024): the method against flow matching in data
space and against a neural ODE trained through dopri5, on the offline data sets.

For every data set (crossing_pairs, moons, digits, diabetes) and every method ("embedding": the
method; "data_space": flow matching from x to y; "backprop": the same networks trained on the
task loss through dopri5; optionally "trigonometric": the method on the path
cos(pi t / 2) z_0 + sin(pi t / 2) z_1), trains the config `configs/simfree_node/<set>.py:<method>` with the
shared trainer, then evaluates the held-out split: accuracy (or RMSE) after 1, 2 and 10 Euler
steps and with dopri5, its NFE per batch, and the training speed: the median steps per second
over the logging windows after the first (which holds the compilation), the time the steps
take at that speed, and the wall time of the whole `train` call (set-up, compilation and
checkpoints included; on a shared machine the noisiest of the three). Each run's record goes to <out>/<set>_<method>.json (an existing record is kept,
so an interrupted sweep resumes); the table to <out>/results.md and all records to
<out>/results.json.

    nice -n 10 python experiments/simfree_node/run.py --workdir=/tmp/simfree_runs
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATASETS = ("crossing_pairs", "moons", "digits", "diabetes")
METHODS = ("embedding", "data_space", "backprop")
LABELS = {
    "embedding": "method (embedding FM)",
    "data_space": "data-space FM",
    "backprop": "NODE, backprop through dopri5",
    "trigonometric": "method, trigonometric path",
}


def run_one(dataset: str, method: str, workdir: str) -> dict:
    from flowjax.train import inference, load_config_file, train

    path = os.path.join(REPO, "configs", "simfree_node", f"{dataset}.py")
    config = load_config_file(path, method)
    config.evaluate.after_training = False
    start = time.perf_counter()
    train(config, workdir)
    train_seconds = time.perf_counter() - start
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        speeds = [json.loads(line)["steps_per_second"] for line in f]
    metrics = inference.evaluate(config, workdir)["metrics"]
    return {
        "dataset": dataset,
        "method": method,
        "config": f"configs/simfree_node/{dataset}.py:{method}",
        "num_steps": config.train.num_steps,
        "train_seconds": train_seconds,
        "steps_per_second": float(np.median(speeds[1:] or speeds)),
        **metrics,
    }


def table(records: list[dict]) -> str:
    lines = [
        "| data set | method | metric | Euler 1 | Euler 2 | Euler 10 | dopri5 | dopri5 NFE "
        "| steps/s | time in steps (s) | wall (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        kind = "accuracy" if "accuracy_dopri5" in r else "rmse"
        fmt = (lambda v: f"{100 * v:.2f}%") if kind == "accuracy" else (lambda v: f"{v:.4g}")
        cells = [fmt(r[f"{kind}_euler_{n}"]) for n in (1, 2, 10)] + [fmt(r[f"{kind}_dopri5"])]
        speed = r["steps_per_second"]
        lines.append(
            f"| {r['dataset']} | {LABELS[r['method']]} | {kind} | "
            + " | ".join(cells)
            + f" | {r['nfe_dopri5']:.0f} | {speed:.0f} | {r['num_steps'] / speed:.0f}"
            + f" | {r['train_seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="checkpoints of every run go here")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--methods", default=",".join(METHODS))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    records = []
    for dataset in args.datasets.split(","):
        for method in args.methods.split(","):
            record_file = os.path.join(args.out, f"{dataset}_{method}.json")
            if not os.path.exists(record_file):
                workdir = os.path.join(args.workdir, f"{dataset}_{method}")
                record = run_one(dataset, method, workdir)
                with open(record_file, "w") as f:
                    json.dump(record, f, indent=2)
                    f.write("\n")
            with open(record_file) as f:
                records.append(json.load(f))
            print(table(records[-1:]).splitlines()[-1], flush=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(records, f, indent=2)
        f.write("\n")
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(table(records))


if __name__ == "__main__":
    main()
