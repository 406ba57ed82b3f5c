"""The one strict loader: classifier-only exception, errors naming tensors, partial loads on
request, Non-local options following the file, format detection, the pipeline's use of it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from pretrained_helpers import randomize

from nlvideo import pipeline
from nlvideo.config import PRETRAINED_FORMATS, load_config
from nlvideo.engine.checkpoint import save_checkpoint
from nlvideo.models import build_model
from nlvideo.models.pretrained import (
    FORMAT,
    READERS,
    PretrainedMismatchError,
    load_pretrained,
    open_pretrained,
)

HEAD = {"blocks.6.proj.weight", "blocks.6.proj.bias"}


def nlvideo_checkpoint(path: Path, name: str, num_classes: int, **kwargs) -> dict:
    model = randomize(build_model(name, num_classes=num_classes, **kwargs))
    ckpt = {
        "format": FORMAT,
        "model": model.state_dict(),
        "model_name": name,
        "model_kwargs": {"num_classes": num_classes, **kwargs},
        "classes": [f"c{i}" for i in range(num_classes)],
    }
    save_checkpoint(path, ckpt)
    return ckpt


def test_the_config_offers_exactly_the_readers() -> None:
    assert set(PRETRAINED_FORMATS) == set(READERS)


def test_same_class_count_loads_the_head_too(tmp_path: Path) -> None:
    ckpt = nlvideo_checkpoint(tmp_path / "best.pt", "i3d_nl_tiny", 8)
    model = build_model("i3d_nl_tiny", num_classes=8)
    report = load_pretrained(model, tmp_path / "best.pt")
    assert report.format == "nlvideo" and not report.reinitialised and not report.ignored
    assert set(report.loaded) == set(ckpt["model"])
    for key, value in model.state_dict().items():
        assert torch.equal(value, ckpt["model"][key]), key


def test_another_class_count_resets_only_the_classifier(tmp_path: Path, caplog) -> None:
    ckpt = nlvideo_checkpoint(tmp_path / "best.pt", "i3d_nl_tiny", 8)
    model = build_model("i3d_nl_tiny", num_classes=3)
    head_before = {k: v.clone() for k, v in model.state_dict().items() if k in HEAD}
    with caplog.at_level(logging.INFO, logger="nlvideo.models.pretrained"):
        report = load_pretrained(model, tmp_path / "best.pt")
    assert report.reinitialised == sorted(HEAD)
    assert set(report.loaded) == set(ckpt["model"]) - HEAD
    for key, value in model.state_dict().items():
        expected = head_before[key] if key in HEAD else ckpt["model"][key]
        assert torch.equal(value, expected), key
    assert "8 classes in the file, 3 in the model" in caplog.text
    assert "re-initialised 2: blocks.6.proj.bias, blocks.6.proj.weight" in caplog.text


def test_a_classifier_of_another_width_is_an_error_not_a_reset(tmp_path: Path) -> None:
    state = build_model("i3d_tiny", num_classes=8).state_dict()
    state["blocks.6.proj.weight"] = torch.zeros(3, 100)
    torch.save(state, tmp_path / "wide.pyth")
    with pytest.raises(PretrainedMismatchError, match=r"proj\.weight \[3, 100\] vs \[3, 256\]"):
        load_pretrained(build_model("i3d_tiny", num_classes=3), tmp_path / "wide.pyth")


def test_another_network_is_an_error_listing_the_tensors(tmp_path: Path) -> None:
    # The cases: i3d_nl_tiny -> c2d_tiny (other conv shapes) and -> a 4-class i3d_tiny
    # (26 Non-local tensors that used to be dropped without a word).
    nlvideo_checkpoint(tmp_path / "best.pt", "i3d_nl_tiny", 8)
    with pytest.raises(PretrainedMismatchError) as err:
        load_pretrained(build_model("c2d_tiny", num_classes=8), tmp_path / "best.pt")
    message = str(err.value).splitlines()
    assert "best.pt (nlvideo) does not fit the model" in message[0]
    assert message[1].startswith("  26 unexpected in the file: blocks.3.non_local.0.")
    assert message[2].startswith("  4 shape differs (file vs model): blocks.0.conv.weight [8, 3, 5")
    assert len(message) == 3  # nothing missing: no line for it
    with pytest.raises(PretrainedMismatchError) as err:
        load_pretrained(build_model("i3d_tiny", num_classes=4), tmp_path / "best.pt")
    assert len(err.value.unexpected) == 26 and not err.value.missing
    assert not err.value.mismatched  # the classifier only differs in its class count


def test_error_lines_show_the_first_names_and_the_count(tmp_path: Path) -> None:
    torch.save(build_model("i3d_tiny").state_dict(), tmp_path / "plain.pyth")
    with pytest.raises(PretrainedMismatchError) as err:
        load_pretrained(build_model("i3d_nl_tiny"), tmp_path / "plain.pyth")
    (line,) = [x for x in str(err.value).splitlines() if "missing" in x]
    # 26 Non-local tensors, less the two num_batches_tracked counters (not weights)
    assert line.startswith("  24 missing from the file: blocks.3.non_local.0.")
    assert line.endswith(", ... (19 more)") and line.count("blocks.") == 5


def test_partial_load_on_request_warns_with_the_counts(tmp_path: Path, caplog) -> None:
    ckpt = nlvideo_checkpoint(tmp_path / "best.pt", "i3d_nl_tiny", 8)
    model = build_model("c2d_tiny", num_classes=8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with caplog.at_level(logging.INFO, logger="nlvideo.models.pretrained"):
        report = load_pretrained(model, tmp_path / "best.pt", strict=False)
    assert (
        "PARTIAL load (model.pretrained_strict=false): 0 missing, 26 unexpected, 4 mis-shaped"
        in (caplog.text)
    )
    assert any(r.levelno == logging.WARNING for r in caplog.records)
    assert len(report.ignored) == 30 and "blocks.0.conv.weight" in report.ignored
    assert "blocks.0.conv.weight" in report.reinitialised  # kept its fresh init
    state = model.state_dict()
    assert torch.equal(state["blocks.0.conv.weight"], before["blocks.0.conv.weight"])
    assert torch.equal(state["blocks.6.proj.weight"], ckpt["model"]["blocks.6.proj.weight"])


def test_nlvideo_checkpoint_nl_options_follow_the_checkpoint(tmp_path: Path) -> None:
    nlvideo_checkpoint(tmp_path / "best.pt", "i3d_nl_tiny", 8, nl_pool_first=True)
    assert open_pretrained(tmp_path / "best.pt").model_options == {"nl_pool_first": True}
    with pytest.raises(ValueError, match=r"need model\.nl_pool_first=True; the model differs"):
        load_pretrained(build_model("i3d_nl_tiny", num_classes=8), tmp_path / "best.pt")
    # A network without Non-local blocks has nothing that could compute differently.
    load_pretrained(build_model("i3d_tiny", num_classes=8), tmp_path / "best.pt", strict=False)


def test_the_pipeline_builds_the_model_the_file_needs(tmp_path: Path) -> None:
    source = nlvideo_checkpoint(tmp_path / "best.pt", "i3d_nl_tiny", 8, nl_scale_logits=True)
    cfg = load_config(None, [f"model.pretrained={tmp_path / 'best.pt'}"])
    model, kwargs = pipeline.build_network(cfg, num_classes=8)
    assert kwargs["nl_scale_logits"] is True
    assert all(b.scale_logits for b in model.modules() if type(b).__name__ == "NLBlockND")
    assert torch.equal(model.state_dict()["blocks.3.non_local.0.g.weight"],
                       source["model"]["blocks.3.non_local.0.g.weight"])  # fmt: skip


def test_the_pipeline_loads_strictly_unless_told(tmp_path: Path) -> None:
    nlvideo_checkpoint(tmp_path / "best.pt", "i3d_nl_tiny", 8)
    overrides = ["model.name=c2d_tiny", f"model.pretrained={tmp_path / 'best.pt'}"]
    with pytest.raises(PretrainedMismatchError):
        pipeline.build_network(load_config(None, overrides), num_classes=8)
    cfg = load_config(None, [*overrides, "model.pretrained_strict=false"])
    pipeline.build_network(cfg, num_classes=8)


@pytest.mark.parametrize(
    ("content", "fmt"),
    [
        ({"format": FORMAT, "model": {}}, "nlvideo"),
        ({"model_state": {"s1.pathway0_stem.conv.weight": torch.zeros(1)}}, "slowfast"),
        ({"state_dict": {"blocks.0.conv.weight": torch.zeros(1)}}, "pytorchvideo"),
        ({"conv1.weight": torch.zeros(1), "layer1.0.conv1.weight": torch.zeros(1)}, "imagenet2d"),
    ],
)
def test_the_format_comes_from_the_content(content, fmt, tmp_path: Path) -> None:
    torch.save(content, tmp_path / "weights.bin")
    assert open_pretrained(tmp_path / "weights.bin").format == fmt


def test_an_unknown_layout_names_the_formats(tmp_path: Path) -> None:
    torch.save({"encoder.weight": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"cannot tell the format of .*other\.pt.*caffe2"):
        open_pretrained(tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"other\.pt is not a slowfast file"):
        open_pretrained(tmp_path / "other.pt", "slowfast")


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"absent\.pkl"):
        load_pretrained(build_model("i3d_tiny"), tmp_path / "absent.pkl")


def test_a_bad_weights_file_fails_before_any_data_work(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "weights.pkl").write_bytes(b"not a pickle at all")

    def no_data(*args, **kwargs):
        raise AssertionError("data work started before the weights file was read")

    monkeypatch.setattr(pipeline.jobs, "run_data", no_data)
    cfg = load_config(None, [f"model.pretrained={tmp_path / 'weights.pkl'}"])
    with pytest.raises(ValueError, match=r"weights\.pkl is corrupt"):
        pipeline.build_training(cfg, info=None)


def test_the_cli_shows_which_tensors_do_not_fit(capsys) -> None:
    from nlvideo.cli.common import USAGE_ERROR, run_command

    def job() -> int:
        raise PretrainedMismatchError(
            "model.pretrained: x.pt (nlvideo)", ["a"], [], ["b [1] vs [2]"]
        )

    assert run_command("nlvideo-train", job) == USAGE_ERROR
    assert capsys.readouterr().err.splitlines() == [
        "nlvideo-train: model.pretrained: x.pt (nlvideo) does not fit the model "
        "(model.pretrained_strict=false loads the rest)",
        "  1 missing from the file: a",
        "  1 shape differs (file vs model): b [1] vs [2]",
    ]
