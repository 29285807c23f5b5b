"""Command line and config files for a recipe: jsonargparse over the recipe's config dataclass.

Precedence, lowest first: the field defaults, the preset's YAML file (``configs/<recipe>/<preset>.yaml`` next to the
recipe), ``--config FILE`` (any number, in order), then the options on the command line. ``--print-config`` prints
the effective config as YAML (the preset resolved) and exits; passing that file back with ``--config`` gives the
same run.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from jsonargparse import ActionConfigFile, ArgumentParser, DefaultHelpFormatter

from ..backbones import backbone_available
from ..data import LOCAL_DATA_LAYOUT
from .config import PRESET_NAMES, RecipeConfig, parse_layers
from .methods import settle_method

ConfigT = TypeVar("ConfigT", bound=RecipeConfig)
HELP_FLAGS = ("-h", "--help")


class HelpFormatter(argparse.RawDescriptionHelpFormatter, DefaultHelpFormatter):
    """jsonargparse's help with the recipe's docstring kept as written (its usage lines)."""


@dataclasses.dataclass(frozen=True)
class RecipeFiles:
    """Where a recipe's presets live, named after its file: ``recipes/configs/<recipe>/{demo,full}.yaml``."""

    recipe: str
    description: str
    presets_dir: Path

    @classmethod
    def of(cls, config_cls: type) -> RecipeFiles:
        """The files of the recipe module that defines ``config_cls``."""
        module = sys.modules[config_cls.__module__]
        path = Path(module.__file__).resolve()
        return cls(path.stem, module.__doc__ or "", path.parent / "configs" / path.stem)

    def preset(self, name: str) -> dict[str, Any]:
        path = self.presets_dir / f"{name}.yaml"
        if not path.is_file():
            raise FileNotFoundError(f"{self.recipe} has no {name} preset: {path} does not exist.")
        values = yaml.safe_load(path.read_text()) or {}
        if not isinstance(values, dict) or "preset" in values:
            raise ValueError(f"{path} must be a mapping of config fields (without 'preset').")
        return values


def build_parser(config_cls: type[RecipeConfig], files: RecipeFiles) -> ArgumentParser:
    """One option per config field (``--max-steps`` for ``max_steps``), ``--config`` and ``--print-config``.
    Fields a preset sets show both presets' values in their help."""
    presets = {name: files.preset(name) for name in PRESET_NAMES}
    parser = ArgumentParser(
        prog=f"{files.recipe}.py",
        description=f"{files.description}\nYour own data (--data FOLDER):\n{LOCAL_DATA_LAYOUT}",
        print_config=None,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--config", action=ActionConfigFile, help="A YAML config file (see --print-config).")
    parser.add_argument(
        "--print-config", action="store_true", help="Print the effective config as YAML and exit."
    )
    hints = typing.get_type_hints(config_cls)
    for field in dataclasses.fields(config_cls):
        text = field.metadata.get("help", "")
        if any(field.name in values for values in presets.values()):
            shown = ", ".join(
                f"{name}: {values.get(field.name, field.default)}" for name, values in presets.items()
            )
            text += f" ({shown})"
        parser.add_argument(
            f"--{field.name.replace('_', '-')}",
            dest=field.name,
            type=hints[field.name],
            default=field.default,
            help=text,
            **({"nargs": "?", "const": True} if hints[field.name] is bool else {}),
        )
    return parser


def parse_config(config_cls: type[ConfigT], argv: Sequence[str] | None = None) -> ConfigT:
    """The recipe's config from its preset, ``--config`` files and the command line (see the module docstring);
    ``--print-config`` prints it and exits."""
    return resolve_config(config_cls, argv)[0]


def resolve_config(
    config_cls: type[ConfigT], argv: Sequence[str] | None = None, preset: str | None = None
) -> tuple[ConfigT, str]:
    """:func:`parse_config` and the preset that was asked for (``auto`` included); ``preset`` forces one (the
    demo fallback of ``--preset auto``)."""
    files = RecipeFiles.of(config_cls)
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(config_cls, files)
    given = _namespace(parser.parse_args([a for a in argv if a not in (*HELP_FLAGS, "--print-config")]))
    asks_help = any(flag in argv for flag in HELP_FLAGS)
    chosen = preset or ("demo" if asks_help and given["preset"] == "auto" else _choose_preset(given, files))
    parser.set_defaults(files.preset(chosen))
    values = _namespace(parser.parse_args(argv))
    print_config = values.pop("print_config")
    values["preset"] = chosen
    if given["backbone"] is not None and given["pretrained"] is None:
        values["pretrained"] = None  # the preset's open_clip tag belongs to the preset's backbone
    values["output_dir"] = Path(values["output_dir"] or Path("runs") / files.recipe)
    hints = typing.get_type_hints(config_cls)
    for name, value in values.items():  # YAML writes 4 for 4.0: keep float fields floats
        if hints[name] is float and isinstance(value, int) and not isinstance(value, bool):
            values[name] = float(value)
    config = config_cls(**values)
    try:
        parse_layers(config.layers)
    except ValueError as error:
        sys.exit(f"error: --{error}")
    explicit = explicit_fields(argv)
    try:
        config = settle_method(config, explicit)
    except ValueError as error:
        sys.exit(f"error: {error}")
    config.explicit_fields = explicit  # not a field: what the schedule of local data must not override
    missing = [name for name in ("backbone", "data") if getattr(config, name) is None]
    if missing:
        sys.exit(
            f"error: the {chosen} preset of {files.recipe} sets no {' or '.join(missing)}; pass --{missing[0]}."
        )
    if print_config:
        print(dump_config(config), end="", flush=True)
        sys.exit(0)
    return config, given["preset"]


def explicit_fields(argv: Sequence[str]) -> set[str]:
    """Config fields set on the command line (``--max-steps 3``, ``--max-steps=3``) or in a ``--config`` file,
    as opposed to the field defaults and the preset: what a recipe must not override with its own defaults."""
    names: set[str] = set()
    for index, word in enumerate(argv):
        if not word.startswith("--"):
            continue
        key, _, value = word[2:].partition("=")
        if key != "config":
            names.add(key.replace("-", "_"))
            continue
        path = Path(value or (argv[index + 1] if index + 1 < len(argv) else ""))
        if path.is_file():
            values = yaml.safe_load(path.read_text()) or {}
            names.update(values if isinstance(values, dict) else ())
    return names


def dump_config(config: RecipeConfig) -> str:
    """The config as YAML, one key per field, that ``--config`` reads back to the same config."""
    values = {
        key: str(value) if isinstance(value, Path) else value
        for key, value in dataclasses.asdict(config).items()
    }
    return yaml.safe_dump(values, sort_keys=False)


def banner(message: str) -> None:
    line = "=" * 100
    print(f"\n{line}\n{message}\n{line}\n", flush=True)


def _namespace(parsed: Any) -> dict[str, Any]:
    values = parsed.as_dict()
    values.pop("config", None)
    return values


def _choose_preset(given: dict[str, Any], files: RecipeFiles) -> str:
    """``--preset auto``: full when its backbone can be had here, else demo (with a banner). A backbone passed
    explicitly is never swapped for the demo one: when it is not available, say so and stop."""
    if given["preset"] != "auto":
        return given["preset"]
    full = files.preset("full")
    explicit = given["backbone"]
    backbone = explicit or full.get("backbone")
    pretrained = given["pretrained"] if explicit else full.get("pretrained")
    if backbone_available(backbone, pretrained):
        return "full"
    if explicit is not None:
        from huggingface_hub import constants

        sys.exit(
            f"error: --preset auto --backbone {explicit}: that backbone is not a local folder or a demo name, it is "
            f"not in the Hugging Face cache ({constants.HF_HUB_CACHE}), and the Hub is not reachable (or "
            "HF_HUB_OFFLINE=1). Download it once "
            f"with network access (`hf download {explicit}`, or run this command without HF_HUB_OFFLINE), pass a "
            "folder saved with save_pretrained, or drop --backbone to run the demo preset."
        )
    demo = files.preset("demo")
    data = given["data"] or demo.get("data")
    data_words = f"your data {data}" if given["data"] else f"the bundled data ({data})"
    backbone_words = (
        "the real all-MiniLM-L6-v2 (packaged)"
        if str(demo.get("backbone")).lower() == "minilm"
        else f"the small random backbone {demo.get('backbone')!r}, so its numbers show that the pipeline works, "
        "not what a pretrained model reaches"
    )
    banner(
        f"--preset auto: the full backbone {backbone!r} is not cached and the Hugging Face Hub is not reachable "
        f"(or HF_HUB_OFFLINE=1).\nRunning the DEMO preset instead, on {data_words} with {backbone_words}. Pass "
        "--backbone (a local folder or a cached hub id) to train another."
    )
    return "demo"
