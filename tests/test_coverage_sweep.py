"""The coverage sweep on a representative sample (the full sweep is ``python -m mm_adapters.coverage``; its table is
docs/supported_models.md). Each model: every preset added with no ``spec=``, identity at init, gradients only in the
adapters, and Houlsby in every layer of every tower."""

import pytest

from mm_adapters.coverage import named_candidate
from mm_adapters.coverage.sweep import class_coverage, coverage, summary_lines, sweep

SAMPLE = {
    "open_clip": ["ViT-B-32", "ViT-B-16-SigLIP", "EVA02-B-16", "convnext_base", "RN50", "coca_ViT-B-32"],
    "timm": [
        "vit_small_patch16_224", "deit3_small_patch16_224", "deit_tiny_distilled_patch16_224", "eva02_tiny_patch14_224",
        "beit_base_patch16_224", "swin_tiny_patch4_window7_224", "cait_xxs24_224", "maxvit_tiny_tf_224",
        "mvitv2_base",
    ],
    "transformers": [
        "distilbert", "albert:SequenceClassification", "deberta-v2", "dinov2:ImageClassification", "siglip",
        "vit_mae", "swin", "sew-d:CTC", "modernbert", "xlm-roberta-xl",
    ],
}  # fmt: skip
PARTIAL = {"convnext_base", "RN50"}  # a ConvNeXt / ResNet image tower: only the text tower is adapted


@pytest.fixture(scope="module")
def results():
    return sweep(named_candidate(library, name) for library, names in SAMPLE.items() for name in names)


def test_every_sampled_model_works_with_no_spec(results):
    failures = [f"{r.library} {r.name}: {r.error}" for r in results if not r.ok]
    assert not failures
    for result in results:
        assert result.partial == (result.name in PARTIAL), (result.name, result.notes)
        assert result.towers and all(count > 0 for count in result.towers.values())


def test_the_summary_reports_coverage_per_library(results):
    assert {library: passed for library, (passed, _) in coverage(results).items()} == {
        library: len(names) for library, names in SAMPLE.items()
    }
    assert class_coverage(results)[0] == class_coverage(results)[1] >= 7
    assert any(line.startswith("timm classes:") for line in summary_lines(results))
