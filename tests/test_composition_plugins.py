"""Composition methods are plug-ins: a new one is one registered class, and the core never imports composition."""

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import mm_adapters as mma
from mm_adapters.composition.activation import activate_block
from mm_adapters.composition.blocks import CompositionBlock
from mm_adapters.plugins import CompositionMethod, composition_method, register_composition
from mm_adapters.state import iter_sites

from tiny_backbones import hf_bert

PACKAGE = Path(mma.__file__).parent
CORE = [
    "site.py",
    "state.py",
    "injection.py",
    "serialization.py",
    "plugins.py",
    "config.py",
    "specs",
    "io",
    "atomic.py",
]
HIGHER = (
    "composition",
    "lightning",
    "recipes",
    "backbones",
    "speed",
    "interop",
    "runner",
    "cli",
    "inference",
)


@dataclass(frozen=True)
class Average(CompositionBlock):
    """AdapterHub's Average: the mean of the adapters' outputs (a method written outside the library)."""

    adapters: tuple[str, ...]

    def adapter_names(self):
        return self.adapters


@dataclass(frozen=True)
class AveragePlan:
    adapters: tuple[str, ...]

    def apply(self, site, hidden, sublayer_input):
        deltas = [site.adapters[name](hidden) for name in self.adapters]
        return hidden + torch.stack(deltas).mean(dim=0)


class AverageMethod(CompositionMethod):
    def activate(self, model, block):
        activate_block(model, block)

    def trained(self, block):
        return set(block.adapters), set()

    def site_plan(self, block, site):
        present = tuple(n for n in block.adapters if n in site.adapters)
        return AveragePlan(present) if present else None


def test_a_new_composition_method_is_one_registration():
    register_composition(Average, AverageMethod())
    tiny = hf_bert(0)
    model = tiny.model.requires_grad_(False)
    for name in ("a", "b"):
        mma.add_adapter(model, name)
    with torch.no_grad():
        for site in iter_sites(model):
            for adapter in site.adapters.values():
                adapter.up.weight.normal_()
    batch = tiny.make_batch(0)
    mma.set_active_adapters(model, Average(("a", "b")))
    assert mma.active_adapters(model) == ("a", "b")
    with torch.no_grad():
        averaged = tiny.run(model, batch)
        mma.set_active_adapters(model, None)
        base = tiny.run(model, batch)
    assert not torch.allclose(averaged, base)
    # and it nests like the built-in ones: a Parallel branch is any registered block the Parallel accepts
    assert isinstance(composition_method(Average(("a",))), AverageMethod)


def test_an_unknown_setup_names_what_is_accepted():
    tiny = hf_bert(0)
    mma.add_adapter(tiny.model, "a")
    with pytest.raises(TypeError, match="Fuse.*Parallel.*Stack"):
        mma.set_active_adapters(tiny.model, 42)


def _imports(path: Path):
    """Every module an import statement in ``path`` names, at any nesting (function-level imports included)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            yield "." * node.level + (node.module or "")
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


@pytest.mark.parametrize("entry", CORE)
def test_the_core_never_imports_a_higher_layer(entry):
    paths = sorted((PACKAGE / entry).glob("*.py")) if (PACKAGE / entry).is_dir() else [PACKAGE / entry]
    for path in paths:
        for module in _imports(path):
            parts = module.lstrip(".").split(".")
            assert not (parts[0] in HIGHER or parts[:2] in ([["mm_adapters", h] for h in HIGHER])), (
                f"{path.name} imports {module}"
            )


def test_each_method_lives_in_its_own_file():
    from mm_adapters import BatchSplit, Fuse, Parallel, Stack

    files = {cls.__module__.rsplit(".", 1)[1] for cls in (Stack, Fuse, BatchSplit, Parallel)}
    assert files == {"stack", "fuse", "batch_split", "parallel"}
    for cls in (Stack, Fuse, BatchSplit, Parallel):
        assert type(composition_method(object.__new__(cls))).__module__ == cls.__module__
