"""``python -m mm_adapters.inspect MODEL``: build MODEL with random weights (offline) and print its adapter spec.

MODEL is ``timm:NAME`` (a timm ``@register_model`` name), ``open_clip:NAME`` (an ``open_clip.list_models()``
config), ``hf:MODEL_TYPE`` (a Hugging Face model type, e.g. ``hf:dinov2``, built from its default config) or a local
``save_pretrained`` folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from torch import nn


def build(source: str) -> nn.Module:
    kind, _, name = source.partition(":")
    if kind == "timm" and name:
        import timm

        return timm.create_model(name, pretrained=False)
    if kind == "open_clip" and name:
        import open_clip

        return open_clip.create_model(name, pretrained=None)
    if kind == "hf" and name:
        from transformers import AutoConfig, AutoModel

        return AutoModel.from_config(AutoConfig.for_model(name))
    if Path(source).is_dir():
        from transformers import AutoModel

        return AutoModel.from_pretrained(source)
    raise SystemExit(
        f"Cannot build {source!r}: use timm:NAME, open_clip:NAME, hf:MODEL_TYPE or a local folder."
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", help="timm:NAME, open_clip:NAME, hf:MODEL_TYPE or a save_pretrained folder")
    args = parser.parse_args()
    from .describe import describe

    try:
        model = build(args.model)
    except Exception as error:  # noqa: BLE001  (timm, open_clip and transformers each raise their own kind)
        raise SystemExit(
            f"Cannot build {args.model!r}: {type(error).__name__}: {error}. Names are timm:NAME (timm.list_models()), "
            "open_clip:NAME (open_clip.list_models()), hf:MODEL_TYPE (e.g. hf:dinov2) or a save_pretrained folder."
        ) from None
    describe(model.eval())


if __name__ == "__main__":
    main()
