"""The package's layers, read from its imports with ``ast`` (imports inside functions and under
``TYPE_CHECKING`` included): no import cycle between modules, and no module imports from a layer above
its own.

Layers, bottom to top::

    0  the package itself (its version), errors, types, jsonio, text, config, hub
    1  analysis, viz                                pure tensor maths, figures (no model, gradio, nnsight)
    2  model                                        the only code that touches nnsight or names module paths
    3  prompts, behaviours                          what the prompts and the behaviours are
  3.5  prompt_files, prompt_checks                  user prompt files; overlap and length checks on prompt sets
    4  method                                       the experiment's steps, each usable alone
    5  services                                     what the UI and the CLI call
    6  experiment                                   the runner: orders the steps, handles resume, reports
    7  ui, cli, cli_beyond, __main__                entry points
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "neuroscope"
LAYERS = {
    "errors": 0, "types": 0, "jsonio": 0, "text": 0, "config": 0, "hub": 0, "": 0,
    "analysis": 1, "viz": 1,
    "model": 2,
    "prompts": 3, "behaviours": 3,
    "prompt_files": 3.5, "prompt_checks": 3.5,
    "method": 4,
    "services": 5,
    "experiment": 6,
    "ui": 7, "cli": 7, "cli_beyond": 7, "__main__": 7,
}  # fmt: skip
# Third-party packages a layer must not import (gradio is the UI's; nnsight stays in the model layer).
FORBIDDEN = {
    "analysis": {"gradio", "nnsight", "transformers"},
    "viz": {"gradio", "nnsight", "transformers", "torch"},
    "model": {"gradio"},
    "method": {"gradio"},
    "services": {"gradio"},
    "experiment": {"gradio"},
}


def modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        name = ".".join(("neuroscope",) + path.relative_to(ROOT).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def imports(path: Path, known: dict[str, Path], package: str | None = None) -> tuple[set[str], set[str]]:
    """(the package's modules ``path`` imports, the third-party top-level packages it imports)."""
    tree = ast.parse(path.read_text(), str(path))
    ours, theirs = set(), set()
    package = package or ".".join(("neuroscope",) + path.relative_to(ROOT).parent.parts)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                (ours if alias.name.split(".")[0] == "neuroscope" else theirs).add(
                    alias.name if alias.name.split(".")[0] == "neuroscope" else alias.name.split(".")[0]
                )
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: resolve against this file's package
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{module}" if module else base
            if module.split(".")[0] != "neuroscope":
                theirs.add(module.split(".")[0])
                continue
            for alias in node.names:  # `from pkg import submodule` depends on the submodule, not on pkg
                sub = f"{module}.{alias.name}"
                ours.add(sub if sub in known else module)
    return {m for m in ours if m in known}, theirs


def layer_of(module: str) -> tuple[str, int]:
    group = module.split(".")[1] if "." in module else ""
    if group not in LAYERS:
        raise AssertionError(f"{module}: add its group {group!r} to tests/test_layers.py's LAYERS")
    return group, LAYERS[group]


@pytest.fixture(scope="module")
def graph() -> dict[str, tuple[set[str], set[str]]]:
    known = modules()
    return {name: imports(path, known) for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), or a module importing itself."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in edges.get(v, ()):
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_cycle():  # the check itself can fail
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle(graph):
    found = cycles({name: ours for name, (ours, _) in graph.items()})
    assert found == [], f"import cycles: {found}"


def test_no_module_imports_from_a_layer_above_its_own(graph):
    broken = []
    for name, (ours, _) in sorted(graph.items()):
        group, rank = layer_of(name)
        for target in sorted(ours):
            their_group, their_rank = layer_of(target)
            if their_rank > rank or (their_rank == rank and their_group != group and rank in (1, 3, 3.5)):
                broken.append(f"{name} (layer {rank}, {group}) imports {target} (layer {their_rank}, {their_group})")
    assert broken == [], "\n".join(broken)


def test_layers_keep_to_their_own_third_party_packages(graph):
    broken = []
    for name, (_, theirs) in sorted(graph.items()):
        group, _ = layer_of(name)
        for package in sorted(theirs & FORBIDDEN.get(group, set())):
            broken.append(f"{name} imports {package}")
    assert broken == [], "\n".join(broken)


def test_nnsight_is_touched_only_by_the_model_layer(graph):
    users = sorted(name for name, (_, theirs) in graph.items() if "nnsight" in theirs)
    assert users and all(name.startswith("neuroscope.model") for name in users), users


def test_the_reader_sees_lazy_relative_and_type_checking_imports(tmp_path):
    """The reader walks function bodies and ``if TYPE_CHECKING:`` blocks, not only the module's top level."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from neuroscope.a import X\n"
        "def f():\n    import neuroscope.b\n    from . import c\n    import gradio.blocks\n"
    )
    known = {"neuroscope.a": probe, "neuroscope.b": probe, "neuroscope.pkg.c": probe}
    ours, theirs = imports(probe, known, package="neuroscope.pkg")
    assert ours == {"neuroscope.a", "neuroscope.b", "neuroscope.pkg.c"} and "gradio" in theirs
