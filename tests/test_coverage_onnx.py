"""The sweep's ONNX column: a passing model, adapted, is exported per recorded call and compared with eager PyTorch
on another batch size; a model whose graph would compute something else reads ``no`` with the reason; the column and
its figure reach the markdown and survive ``--merge``."""

import dataclasses
import json
import sys

import pytest
import torch
from torch import nn

from mm_adapters.coverage import __main__ as coverage_main
from mm_adapters.coverage.check import Result, check_model
from mm_adapters.coverage.onnx_check import YES, check_onnx
from mm_adapters.coverage.sweep import markdown, onnx_lines
from tests.test_coverage_blocks import HandWrittenViT

pytest.importorskip("onnxruntime")


def _run(model: nn.Module) -> torch.Tensor:
    return model(torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)))


class WithEigenvalues(HandWrittenViT):
    """Uses an operation ONNX has no function for (a symmetric eigen-decomposition)."""

    def forward(self, pixel_values):
        out = super().forward(pixel_values)
        return out * (1 + 1e-3 * torch.linalg.eigvalsh(out.transpose(1, 2) @ out).mean())


class TwoEntryPoints(HandWrittenViT):
    """Like open_clip's models, the sweep calls two methods; each must become a graph."""

    def encode_image(self, pixel_values):
        return self.forward(pixel_values).mean(1)

    def encode_text(self, tokens):
        return self.forward(torch.ones(tokens.shape[0], 3, 32, 32) * tokens.float().mean()).mean(1)


def test_a_passing_model_exports_and_matches_and_the_base_keeps_no_adapter():
    model = HandWrittenViT().eval().requires_grad_(False)
    assert check_onnx(model, _run) == YES
    assert not any("adapters" in name for name, _ in model.named_modules())  # adapted a copy


def test_a_model_that_cannot_export_reads_no_naming_the_operation():
    model = WithEigenvalues().eval().requires_grad_(False)
    assert check_model(model, _run, Result("torch", "eigen")).ok  # the adapters themselves are fine
    verdict = check_onnx(model, _run)
    assert verdict.startswith("no: Cannot export graph 'forward'") and "linalg_eigvalsh" in verdict, verdict


def test_every_top_level_call_of_the_run_is_exported(monkeypatch):
    from mm_adapters.coverage import onnx_check

    exported = []
    real = onnx_check._export_and_compare
    monkeypatch.setattr(onnx_check, "_export_and_compare", lambda call, path: (exported.append(call.method),
                                                                                real(call, path)))  # fmt: skip
    model = TwoEntryPoints().eval().requires_grad_(False)

    def run(m):
        tokens = torch.randint(1, 9, (2, 5), generator=torch.Generator().manual_seed(0))
        return torch.cat([m.encode_image(torch.randn(2, 3, 32, 32)), m.encode_text(tokens)], 1)

    assert check_onnx(model, run) == YES
    assert exported == [
        "encode_image",
        "encode_text",
    ]  # the forward calls inside them are not graphs of their own


def _row(name: str, onnx: str, error: str = "") -> dict:
    result = Result("timm", name, model_class="ViT", family="timm_vit", towers={"vision": 2}, blocks=2)
    result.onnx, result.error = onnx, error
    return dataclasses.asdict(result)


def test_the_column_and_its_figure_reach_the_table_and_survive_merge(tmp_path, monkeypatch, capsys):
    rows = [
        _row("vit_a", YES),
        _row("vit_b", "no: Cannot export graph 'forward' | aten.foo"),
        _row("vit_c", ""),
    ]
    rows.append(_row("vit_d", "", error="ValueError: x"))
    first = tmp_path / "sweep.json"
    first.write_text(json.dumps([_row("vit_a", "")]))
    second = tmp_path / "onnx.jsonl"
    second.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    table = tmp_path / "supported.md"
    monkeypatch.setattr(
        sys, "argv", ["coverage", "--merge", str(first), str(second), "--markdown", str(table)]
    )
    coverage_main.main()
    line = (
        "ONNX, all libraries: 1 of 2 passing models export and match eager PyTorch within 1e-4 (50.0%); "
        "1 passing models not checked"
    )
    assert line in capsys.readouterr().out  # vit_c passed without an ONNX check: counted apart
    text = table.read_text()
    assert line in text
    assert "| works | ONNX | note |" in text
    assert (
        "| yes | no: Cannot export graph 'forward' / aten.foo |" in text
    )  # a '|' in a reason cannot split the row
    results = [Result(**{**r, "notes": ()}) for r in rows]
    assert onnx_lines(results)[0].startswith("ONNX, timm models: 1 of 2")
    assert "ONNX" not in markdown([r for r in results if not r.onnx])  # no column when the run had no --onnx
