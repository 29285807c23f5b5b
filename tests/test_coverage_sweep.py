"""The coverage sweep on a representative sample (the full sweep is ``python -m mm_adapters.coverage``; its table is
docs/supported_models.md). Each model: every preset added with no ``spec=``, identity at init, gradients only in the
adapters, every block the independent finder sees adapted, outputs different from the base in every mode once the
adapters are non-zero; models without attention blocks refused with the spec's reason and counted apart."""

import pytest

from mm_adapters.coverage import named_candidate
from mm_adapters.coverage.sweep import figures, group_outcomes, library_counts, summary_lines, sweep

SAMPLE = {
    "open_clip": ["ViT-B-32", "ViT-B-16-SigLIP", "EVA02-B-16", "convnext_base", "RN50"],
    "timm": [
        "vit_small_patch16_224", "deit_tiny_distilled_patch16_224", "eva02_tiny_patch14_224",
        "swin_tiny_patch4_window7_224", "cait_xxs24_224", "maxvit_tiny_tf_224", "resnet18",
    ],
    "transformers": [
        "distilbert", "albert:SequenceClassification", "dinov2:ImageClassification", "siglip", "llama",
        "mistral:SequenceClassification", "whisper", "clip", "swin", "sew-d:CTC", "resnet",
    ],
}  # fmt: skip
PARTIAL = {"convnext_base", "RN50"}  # a ConvNeXt / ResNet image tower: only the text tower is adapted
REFUSED = {"resnet18", "resnet"}  # no attention blocks: refused, counted apart


@pytest.fixture(scope="module")
def results():
    return sweep(named_candidate(library, name) for library, names in SAMPLE.items() for name in names)


def test_every_sampled_model_works_with_no_spec(results):
    failures = [f"{r.library} {r.name}: {r.error}" for r in results if not r.ok and r.name not in REFUSED]
    assert not failures
    for result in results:
        if result.name in REFUSED:
            assert result.refused and result.blocks == 0 and "no backbone spec" in result.error
            continue
        assert result.partial == (result.name in PARTIAL), (result.name, result.notes)
        assert result.towers and all(count > 0 for count in result.towers.values())
        assert result.blocks >= sum(result.towers.values()) - 1 or result.name in PARTIAL, result


def test_the_summary_counts_refusals_apart(results):
    assert library_counts(results, "timm") == {
        "swept": 7, "pass": 6, "refused": 1, "fail": 0, "half-adapted": 0, "not built": 0,
    }  # fmt: skip
    assert group_outcomes(results, "timm")["resnet"] == "refused"
    found = figures(results)
    assert found["transformers types"] == (10, 10) and found["half-adapted models"] == (0, 23)
    assert any(
        line.startswith("timm modules: 6 of 6 pass (100%), of 7 swept; 1 refused")
        for line in summary_lines(results)
    )
