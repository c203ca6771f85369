"""The import arrows of ARCHITECTURE.md hold: no module of flowjax imports across a forbidden
arrow, and no module imports anything after its first definition (an import at the bottom of a
module is how a cycle hides).

Every `import flowjax...` / `from flowjax... import ...` of every module under flowjax/ is read
from its source (also those inside functions), so a function-local import cannot go around a
rule.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "flowjax"

BASE = {"_checks", "categorical", "parallel"}
# What each part of flowjax may import from the others (a part always may import itself).
ALLOWED: dict[str, set[str]] = {
    "_checks": set(),
    "categorical": set(),
    "parallel": set(),
    "manifolds": BASE,
    "paths": BASE | {"manifolds"},
    "solvers": BASE | {"manifolds", "paths"},
    "losses": BASE | {"manifolds", "paths", "solvers"},
    "guidance": BASE,
    "explain": BASE,
    "models": BASE | {"manifolds"},
    "data": BASE | {"manifolds"},
    "metrics": BASE | {"data", "paths"},
    "train": BASE
    | {"manifolds", "paths", "solvers", "losses", "guidance", "models", "data", "metrics"},
    "main": {"train"},
    "__init__": {"guidance", "losses", "manifolds", "models", "paths", "solvers"},
}
# Inside the trainer: the objectives know the registry only; the registry knows no other module.
TRAIN_ALLOWED: dict[str, set[str]] = {
    "objectives": {"registry"},
    "registry": set(),
    "recipes": {"config", "objectives", "registry"},
}


def part_of(path: Path) -> str:
    """The part of flowjax a source file belongs to ("paths", "train", "main", ...)."""
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py")


def flowjax_imports(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, dotted module) of every import of flowjax in a module's syntax tree."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            package = PACKAGE.parent.joinpath(*node.module.split("."))
            if node.module.split(".")[0] != "flowjax":
                continue
            for alias in node.names:  # from flowjax.train import registry: a module
                is_module = (package / alias.name).is_dir() or (package / f"{alias.name}.py").exists()
                found.append((node.lineno, f"{node.module}.{alias.name}" if is_module else node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("flowjax.")]
    return found


def forbidden_imports(path: Path, source: str) -> list[str]:
    part = part_of(path)
    problems = []
    for line, module in flowjax_imports(ast.parse(source)):
        if module.count(".") == 0:
            continue
        target = module.split(".")[1]
        if target != part and target not in ALLOWED[part]:
            problems.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}")
        if part == "train" and target == "train":
            inner = path.relative_to(PACKAGE / "train").parts[0].removesuffix(".py")
            other = module.split(".")[2] if module.count(".") >= 2 else "__init__"
            if inner in TRAIN_ALLOWED and other != inner and other not in TRAIN_ALLOWED[inner]:
                problems.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}")
    return problems


def late_imports(path: Path, source: str) -> list[str]:
    """Module-level imports placed after the module's first function or class."""
    body = ast.parse(source).body
    first_def = next(
        (n.lineno for n in body if isinstance(n, (ast.FunctionDef, ast.ClassDef))), None
    )
    if first_def is None:
        return []
    return [
        f"{path.relative_to(PACKAGE.parent)}:{n.lineno} imports after its first definition"
        for n in body
        if isinstance(n, (ast.Import, ast.ImportFrom)) and n.lineno > first_def
    ]


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_part_has_rules():
    assert {part_of(p) for p in SOURCES} <= set(ALLOWED)


@pytest.mark.parametrize("check", [forbidden_imports, late_imports])
def test_imports_follow_the_layers(check):
    problems = [p for path in SOURCES for p in check(path, path.read_text())]
    assert not problems, "\n".join(problems)


def test_a_forbidden_import_is_found():
    """The check itself: a path importing a solver, and an import at the bottom of a module."""
    path = PACKAGE / "paths" / "affine.py"
    assert forbidden_imports(path, "from flowjax.solvers import ode_sample\n") == [
        "flowjax/paths/affine.py:1 imports flowjax.solvers"
    ]
    assert forbidden_imports(path, "def f():\n    from flowjax import train\n") == [
        "flowjax/paths/affine.py:2 imports flowjax.train"
    ]
    objective = PACKAGE / "train" / "objectives" / "base.py"
    assert forbidden_imports(objective, "from flowjax.train.config import default_config\n")
    assert late_imports(path, "def f():\n    pass\n\nimport flowjax.paths\n")
