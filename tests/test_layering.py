"""Packages import only those below them (docs: DESIGN, "Packages import only those below them").

Every module under ``rlagent/`` (and ``envs/``) is parsed with ``ast``; every import, including
one inside a function, must name a layer at or below the module's own.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: Layers from the bottom up; a module may import its own layer and those below it.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("envs", ("envs", "rlagent.envs", "rlagent._yaml", "rlagent._tensor_json", "rlagent._folders")),
    ("env_making", ("rlagent.env_making",)),
    ("encoders", ("rlagent.encoders",)),
    ("finetuning", ("rlagent.finetuning",)),
    ("wrappers", ("rlagent.wrappers",)),
    ("pipeline", ("rlagent.pipeline",)),
    ("agents", ("rlagent.agents",)),
    ("planning", ("rlagent.planning",)),
    ("evaluation", ("rlagent.evaluation",)),
    ("training", ("rlagent.training",)),
    ("benchmarks", ("rlagent.benchmarks",)),
    ("serving", ("rlagent.serving", "rlagent.datasets")),
    (
        "cli",
        (
            "rlagent.cli",
            "rlagent.cli_finetune",
            "rlagent.cli_serving",
            "rlagent.cli_datasets",
            "rlagent.errors",
        ),
    ),
)
_RANK = {
    prefix: (rank, name) for rank, (name, prefixes) in enumerate(LAYERS) for prefix in prefixes
}


def _layer(module: str) -> tuple[int, str] | None:
    """The layer of a dotted module name (longest matching prefix), ``None`` outside the repo."""
    if module == "rlagent":
        # Importing the root package runs only its eager imports: it registers the envs.
        return _RANK["envs"]
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        found = _RANK.get(".".join(parts[:end]))
        if found is not None:
            return found
    return None


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """``(line, imported module)`` for every import in ``tree``, relative ones resolved."""
    out = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            if base == "rlagent":
                # ``from rlagent import name``: a submodule, or a lazily exported name.
                import rlagent

                for alias in node.names:
                    target = rlagent._LAZY.get(alias.name, f"rlagent.{alias.name}")
                    out.append((node.lineno, target))
            elif node.module is None:  # ``from . import name``: submodules
                out += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
            else:
                out.append((node.lineno, base))
    return out


def _sources() -> list[Path]:
    files = sorted((REPO / "rlagent").rglob("*.py")) + sorted((REPO / "envs").rglob("*.py"))
    return [path for path in files if path != REPO / "rlagent" / "__init__.py"]


def test_every_module_has_a_layer():
    missing = [str(p.relative_to(REPO)) for p in _sources() if _layer(_module_name(p)) is None]
    assert not missing, f"Modules outside every layer (add them to LAYERS): {missing}"


def test_no_module_imports_a_higher_layer():
    problems = []
    for path in _sources():
        module = _module_name(path)
        rank, name = _layer(module)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, imported in _imports(tree, module, path.name == "__init__.py"):
            target = _layer(imported)
            if target is not None and target[0] > rank:
                problems.append(
                    f"{path.relative_to(REPO)}:{line} (layer {name}) imports {imported} "
                    f"(layer {target[1]}, higher)"
                )
    assert not problems, "Imports of a higher layer:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def f():\n    from rlagent.planning import MCTS\n", ["rlagent.planning"]),
        ("from . import search\n", ["rlagent.agents.search"]),
        ("from ..planning import MCTS\n", ["rlagent.planning"]),
        ("from .. import planning\n", ["rlagent.planning"]),
        ("from rlagent import evaluate\n", ["rlagent.evaluation"]),
        ("import rlagent.training.config as c\n", ["rlagent.training.config"]),
    ],
)
def test_the_checker_sees_every_form_of_import(source, expected):
    imports = _imports(ast.parse(source), "rlagent.agents.factory", False)
    assert [name for _, name in imports] == expected


def test_no_test_folder_shadows_a_library():
    """``tests`` is on sys.path, so a folder there named like a library (``datasets``) is found
    by ``importlib.util.find_spec`` and makes transformers believe that library is installed."""
    libraries = {"datasets", "transformers", "torch", "minari", "ray", "peft", "accelerate"}
    folders = {p.name for p in (REPO / "tests").iterdir() if p.is_dir()}
    assert not folders & libraries, folders & libraries
