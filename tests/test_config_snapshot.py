"""Every resolved config of configs/ equals its stored snapshot, key by key.

The snapshot (tests/data/resolved_configs.json) was written by tests/reference/make_config_snapshot.py
before the trainer's objectives moved into a package; a change of layout must leave every config
as it was. A config that is meant to change is re-snapshotted in the same commit.
"""

from __future__ import annotations

import json
import os

import pytest

from config_variants import VARIANTS, resolved

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(ROOT, "tests", "data", "resolved_configs.json")) as f:
    SNAPSHOT = json.load(f)


def _differences(expected, actual, prefix=""):
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in sorted(set(expected) | set(actual)):
            name = f"{prefix}.{key}" if prefix else key
            if key not in actual:
                yield f"{name}: missing (was {expected[key]!r})"
            elif key not in expected:
                yield f"{name}: new key ({actual[key]!r})"
            else:
                yield from _differences(expected[key], actual[key], name)
    elif expected != actual:
        yield f"{prefix}: {expected!r} -> {actual!r}"


def test_snapshot_lists_every_config_file():
    files = sorted(
        f"configs/{d}/{f}"
        for d in os.listdir(os.path.join(ROOT, "configs"))
        for f in os.listdir(os.path.join(ROOT, "configs", d))
        if f.endswith(".py") and not f.startswith("_")
    )
    assert files == sorted(VARIANTS)
    assert sorted(SNAPSHOT) == sorted(f"{p}:{v or ''}" for p, vs in VARIANTS.items() for v in vs)


@pytest.mark.parametrize("path", sorted(VARIANTS))
def test_resolved_configs_unchanged(path):
    for variant in VARIANTS[path]:
        name = f"{path}:{variant or ''}"
        diff = list(_differences(SNAPSHOT[name], resolved(os.path.join(ROOT, path), variant)))
        assert not diff, f"{name} changed:\n" + "\n".join(diff)
