"""The PySlowFast / video-nonlocal-net test head: window average pool, softmax, mean."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY_TEST_VIEWS, make_video, write_checkpoint
from torch import nn

from nlvideo import pipeline
from nlvideo.models import build_model
from nlvideo.models.test_head import (
    SlowFastTestHead,
    window_softmax_log_probs,
    with_test_head,
)


def test_head_equals_its_formula_on_hand_made_features():
    torch.manual_seed(0)
    features = torch.randn(2, 6, 4, 8, 9)  # a 256-crop-like map: 2 x 3 window positions
    classifier = nn.Linear(6, 5)
    out = window_softmax_log_probs(features, classifier, (4, 7, 7))
    expected = torch.zeros(2, 5)
    positions = [(i, j) for i in range(8 - 7 + 1) for j in range(9 - 7 + 1)]
    for i, j in positions:
        v = features[:, :, :, i : i + 7, j : j + 7].mean((2, 3, 4))
        expected += torch.softmax(classifier(v), dim=1) / len(positions)
    torch.testing.assert_close(out.exp(), expected)
    # The softmax evaluation applies to per-view "logits" gives the averaged probabilities back.
    torch.testing.assert_close(out.softmax(1), expected)
    # Not the global head: pool everything, then one softmax.
    global_probs = torch.softmax(classifier(features.mean((2, 3, 4))), dim=1)
    assert not torch.allclose(expected, global_probs, atol=1e-3)


def test_window_larger_than_the_map_is_clipped_to_it():
    features, classifier = torch.randn(1, 3, 2, 5, 5), nn.Linear(3, 4)
    out = window_softmax_log_probs(features, classifier, (4, 7, 7))
    torch.testing.assert_close(out, torch.log_softmax(classifier(features.mean((2, 3, 4))), 1))


def test_wrapped_network_uses_the_training_window_and_trains_as_before():
    torch.manual_seed(0)
    model = build_model("i3d_tiny", num_classes=7).eval()
    head = with_test_head(model, "slowfast", num_frames=8, train_crop=64)
    assert isinstance(head, SlowFastTestHead) and head.window == (4, 2, 2)  # T/2, 64/32
    assert not head.training and not any(True for _ in head.parameters(recurse=False))
    train_size, test_size = torch.randn(2, 3, 8, 64, 64), torch.randn(2, 3, 8, 96, 96)
    with torch.no_grad():
        # A training-size clip has one window position: the global head's softmax.
        torch.testing.assert_close(head(train_size).softmax(1), model(train_size).softmax(1))
        features = model.forward_features(test_size)  # (2, C, 4, 3, 3): 2 x 2 positions
        expected = window_softmax_log_probs(features, model.blocks[-1].proj, (4, 2, 2))
        torch.testing.assert_close(head(test_size), expected)
    assert with_test_head(model, "global", num_frames=8, train_crop=64) is model
    with pytest.raises(ValueError, match="test_head"):
        with_test_head(model, "pyslowfast", num_frames=8, train_crop=64)


def test_checkpoints_are_scored_with_the_head_an_override_names(tmp_path):
    video = make_video(tmp_path / "a.mp4", 20, (64, 48), 25)
    listing = tmp_path / "list.txt"
    listing.write_text(f"{video},juggling balls\n")
    classes = ["abseiling", "juggling balls"]
    ckpt = write_checkpoint(tmp_path / "best.pt", classes, [*TINY_TEST_VIEWS])
    report, _ = pipeline.evaluate_checkpoint(
        ckpt, list_path=str(listing), overrides=["model.test_head=slowfast"]
    )
    assert report.num_videos == 1 and not report.failed
