"""Writes tests/data/resolved_configs.json: every config file of configs/ resolved for each of its
variants, as plain JSON (tuples as lists), so that a layout change can be checked to leave every
resolved config unchanged (tests/test_config_snapshot.py compares them key by key).

    .venv/bin/python tests/reference/make_config_snapshot.py

Run it only when a config is meant to change, and say so in the commit.
"""

from __future__ import annotations

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from config_variants import VARIANTS, resolved  # noqa: E402

OUT = os.path.join(ROOT, "tests", "data", "resolved_configs.json")


def main() -> None:
    snapshot = {
        f"{path}:{variant or ''}": resolved(os.path.join(ROOT, path), variant)
        for path, variants in VARIANTS.items()
        for variant in variants
    }
    with open(OUT, "w") as f:
        json.dump(snapshot, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"Wrote {len(snapshot)} resolved configs to {OUT}.")


if __name__ == "__main__":
    main()
