"""The pipeline: one config gives training, evaluation and inference the same test views."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_TEST_VIEWS, make_video, write_checkpoint

from nlvideo import pipeline
from nlvideo.config import load_config
from nlvideo.data.annotations import VideoRecord, kinetics_filename
from nlvideo.engine.checkpoint import load_checkpoint
from nlvideo.engine.distributed import init_distributed

CLASSES = ["abseiling", "juggling balls"]
CPU = init_distributed("cpu")


@pytest.fixture(scope="module")
def builtin_config(tiny_builtin, tmp_path_factory):
    _, overrides = tiny_builtin
    out = tmp_path_factory.mktemp("pipeline") / "run"
    overrides = [*overrides, "data.num_workers=0", "train.batch_size=2", f"train.output_dir={out}"]
    return load_config(None, overrides), overrides


def _settings(dataset) -> dict:
    """What decides the test views of a dataset (its records aside)."""
    names = ("mode", "num_frames", "stride", "target_fps", "num_clips", "short_side", "backend")
    return {name: getattr(dataset, name) for name in names}


def test_training_evaluation_and_inference_build_the_same_test_views(builtin_config, tmp_path):
    cfg, overrides = builtin_config
    parts = pipeline.build_training(cfg, CPU)
    ckpt = write_checkpoint(tmp_path / "best.pt", parts.classes, overrides)
    eval_cfg = pipeline.checkpoint_config(load_checkpoint(ckpt))
    eval_loader = pipeline.build_test_loader(eval_cfg, parts.val_records, CPU)
    predictor = pipeline.build_predictor(ckpt, device="cpu")

    assert _settings(parts.val_loader.dataset) == _settings(eval_loader.dataset)
    for transform in (pipeline.build_test_transform(eval_cfg), predictor.transform):
        assert vars(transform) == vars(parts.test_transform)
    assert (predictor.num_frames, predictor.stride, predictor.num_clips) == (4, 2, 3)
    assert predictor.short_side == eval_loader.dataset.short_side


def test_a_prediction_equals_the_evaluation_views_through_the_same_model(tmp_path):
    video = make_video(tmp_path / "clip.mp4", 40, (80, 48), 25)
    ckpt = write_checkpoint(
        tmp_path / "best.pt", CLASSES, [*TINY_TEST_VIEWS, "data.num_clips=3", "data.num_crops=3"]
    )
    predictor = pipeline.build_predictor(ckpt, device="cpu")
    cfg = pipeline.checkpoint_config(load_checkpoint(ckpt))
    (batch,) = list(pipeline.build_test_batches(cfg, [VideoRecord(str(video), 0, "clip")], CPU))
    with torch.inference_mode():
        expected = torch.softmax(predictor.model(batch.clips), dim=1).mean(0).numpy()
    prediction = predictor.predict(video)
    assert prediction.num_views == 3 * 3 == batch.clips.shape[0]
    np.testing.assert_allclose(prediction.probs, expected, rtol=1e-5, atol=1e-6)


def test_a_kinetics_csv_is_evaluated_without_data_root(tmp_path):
    """Paths of a CSV given without a root are found beside the CSV (nothing is Path(None))."""
    rows = ["label,youtube_id,time_start,time_end"]
    for i, label in enumerate(CLASSES * 2):
        name = kinetics_filename(f"vid{i:08d}xyz", 10 * i, 10 * i + 10)
        (tmp_path / "k" / label).mkdir(parents=True, exist_ok=True)
        make_video(tmp_path / "k" / label / name, 20, (64, 48), 25)
        rows.append(f"{label},vid{i:08d}xyz,{10 * i},{10 * i + 10}")
    listing = tmp_path / "k" / "val.csv"
    listing.write_text("\n".join(rows) + "\n")
    overrides = [*TINY_TEST_VIEWS, "data.builtin=false", "data.num_clips=2"]  # data.root: ""
    ckpt = write_checkpoint(tmp_path / "best.pt", CLASSES, overrides)
    report, name = pipeline.evaluate_checkpoint(ckpt, list_path=str(listing))
    assert name == str(listing)
    assert (report.num_videos, report.num_evaluated, report.failed) == (4, 4, [])
    assert report.num_clips == 4 * 2


def test_a_list_is_read_against_the_checkpoints_classes(tmp_path):
    video = make_video(tmp_path / "a.mp4", 20, (64, 48), 25)
    listing = tmp_path / "list.txt"
    listing.write_text(f"{video},juggling balls\n")
    ckpt = write_checkpoint(tmp_path / "best.pt", CLASSES, [*TINY_TEST_VIEWS])
    report, _ = pipeline.evaluate_checkpoint(ckpt, list_path=str(listing))
    assert report.video_labels.tolist() == [1] and report.classes == CLASSES


def test_a_misspelled_model_name_fails_before_any_data_is_made(tmp_path):
    cfg = load_config(None, ["model.name=i3d_nl_tni", f"synthetic.root={tmp_path / 'data'}"])
    with pytest.raises(ValueError, match=r"model\.name.*i3d_nl_tni.*i3d_nl_tiny"):
        pipeline.run_training(cfg)
    assert not (tmp_path / "data").exists()


def test_an_unknown_non_local_mode_is_named_with_the_valid_ones(tmp_path):
    cfg = load_config(None, ["model.nl_mode=concat", f"synthetic.root={tmp_path}"])
    with pytest.raises(ValueError, match=r"model\.nl_mode.*'concatenate'"):
        pipeline.check_config(cfg)


def test_a_missing_imagenet_file_stops_a_paper_recipe_before_any_data_is_read(tmp_path):
    recipe = Path(__file__).resolve().parents[1] / "configs/kinetics400/i3d_nl5_r50_32x2.yaml"
    lists = [tmp_path / "train.csv", tmp_path / "val.csv"]
    for path in lists:
        path.write_text("")
    missing = tmp_path / "resnet50-0676ba61.pth"
    overrides = [f"model.pretrained={missing}", f"data.root={tmp_path}"]
    overrides += [f"data.train_list={lists[0]}", f"data.val_list={lists[1]}"]
    cfg = load_config(recipe, overrides)
    with pytest.raises(ValueError, match=r"resnet50-0676ba61\.pth: does not exist \(model\.pre"):
        pipeline.run_training(cfg)


def test_every_model_option_of_the_config_reaches_the_network():
    cfg = load_config(
        None, ["model.nl_mode=dot", "model.dropout=0.25", "model.nl_sub_sample=false"]
    )
    model, kwargs = pipeline.build_network(cfg, num_classes=3)
    assert kwargs["num_classes"] == 3 and kwargs["nl_mode"] == "dot"
    blocks = [m for m in model.modules() if type(m).__name__ == "NLBlockND"]
    assert blocks and all(b.mode == "dot" for b in blocks)
    assert model.blocks[-1].dropout.p == 0.25
    assert all(isinstance(b.pool, torch.nn.Identity) for b in blocks)


def test_model_num_classes_must_match_the_data():
    cfg = load_config(None, ["model.num_classes=5"])
    with pytest.raises(ValueError, match=r"model\.num_classes=5 but the data has 8 classes"):
        pipeline.build_network(cfg, num_classes=8)


def test_the_config_spells_exactly_the_options_the_networks_take():
    """Adding a model option is one field in ModelConfig and one keyword of the builder."""
    from nlvideo.config import ModelConfig
    from nlvideo.models.entrypoints import OPTIONS

    assert set(ModelConfig().model_kwargs(num_classes=1)) == {"num_classes", *OPTIONS}
