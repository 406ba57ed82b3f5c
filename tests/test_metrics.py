"""nlvideo.metrics against scikit-learn on hand-made logits where clip and video accuracy differ."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    recall_score,
    top_k_accuracy_score,
)
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from nlvideo.metrics import (
    compute_metrics,
    format_percent,
    softmax,
    topk_accuracy,
    video_scores,
)

NUM_CLASSES = 6


@pytest.fixture
def views() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-view logits of 12 videos x 3 views, shuffled, with a confident wrong view in some.

    Video 0: views right, right, confidently wrong -> clip 2/3, video wrong (softmax mean).
    Video 1: views wrong, wrong, confidently right -> clip 1/3, video right.
    """
    rng = np.random.default_rng(0)
    logits, labels, videos = [], [], []
    for v in range(12):
        label = v % NUM_CLASSES
        for view in range(3):
            row = rng.normal(0.0, 1.0, NUM_CLASSES)
            if v == 0:
                row[:] = 0.0
                row[label] = 2.0 if view < 2 else -5.0
                row[(label + 1) % NUM_CLASSES] = 1.5 if view < 2 else 9.0
            elif v == 1:
                row[:] = 0.0
                row[label] = -1.0 if view < 2 else 12.0
                row[(label + 2) % NUM_CLASSES] = 1.0
            else:  # noisy views, right on average
                row[label] += 1.0
            logits.append(row)
            labels.append(label)
            videos.append(v)
    order = rng.permutation(len(labels))
    return np.array(logits)[order], np.array(labels)[order], np.array(videos)[order]


def _video_reference(logits, labels, videos):
    """Naive per-video mean of softmax probabilities (loop over videos)."""
    ids = sorted(set(videos.tolist()))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    vprobs = np.stack([probs[videos == v].mean(axis=0) for v in ids])
    vlabels = np.array([labels[videos == v][0] for v in ids])
    return vprobs, vlabels


def test_softmax_matches_naive_formula():
    x = np.array([[1.0, 2.0, 3.0], [1000.0, 1000.0, 0.0]])
    expected0 = np.exp(x[0]) / np.exp(x[0]).sum()
    np.testing.assert_allclose(softmax(x)[0], expected0)
    np.testing.assert_allclose(softmax(x)[1], [0.5, 0.5, 0.0], atol=1e-12)


def test_clip_top1_matches_sklearn_accuracy(views):
    logits, labels, videos = views
    m = compute_metrics(logits, labels, videos, NUM_CLASSES)
    assert m.clip_top1 == pytest.approx(accuracy_score(labels, logits.argmax(1)))


@pytest.mark.parametrize("k", [1, 2, 5])
def test_clip_topk_matches_sklearn(views, k):
    logits, labels, _ = views
    ref = top_k_accuracy_score(labels, logits, k=k, labels=np.arange(NUM_CLASSES))
    assert topk_accuracy(logits, labels, k) == pytest.approx(ref)


def test_video_scores_average_softmax_over_views(views):
    logits, labels, videos = views
    ids, vprobs, vlabels = video_scores(softmax(logits), labels, videos)
    ref_probs, ref_labels = _video_reference(logits, labels, videos)
    np.testing.assert_array_equal(ids, np.arange(12))
    np.testing.assert_allclose(vprobs, ref_probs)
    np.testing.assert_array_equal(vlabels, ref_labels)


def test_video_top1_and_top5_match_sklearn_on_averaged_probabilities(views):
    logits, labels, videos = views
    m = compute_metrics(logits, labels, videos, NUM_CLASSES)
    ref_probs, ref_labels = _video_reference(logits, labels, videos)
    assert m.video_top1 == pytest.approx(accuracy_score(ref_labels, ref_probs.argmax(1)))
    ref5 = top_k_accuracy_score(ref_labels, ref_probs, k=5, labels=np.arange(NUM_CLASSES))
    assert m.video_top5 == pytest.approx(ref5)


def test_clip_and_video_accuracy_differ_where_views_disagree(views):
    logits, labels, videos = views
    m = compute_metrics(logits, labels, videos, NUM_CLASSES)
    video0 = m.video_probs[list(m.videos).index(0)]
    video1 = m.video_probs[list(m.videos).index(1)]
    assert video0.argmax() != 0 and video1.argmax() == 1
    assert m.clip_top1 != pytest.approx(m.video_top1)


def test_confusion_matrix_matches_sklearn_with_all_classes(views):
    logits, labels, videos = views
    m = compute_metrics(logits, labels, videos, NUM_CLASSES)
    ref_probs, ref_labels = _video_reference(logits, labels, videos)
    expected = sk_confusion_matrix(ref_labels, ref_probs.argmax(1), labels=np.arange(NUM_CLASSES))
    np.testing.assert_array_equal(m.confusion, expected)


def test_per_class_and_mean_class_accuracy_match_sklearn_recall(views):
    logits, labels, videos = views
    m = compute_metrics(logits, labels, videos, NUM_CLASSES)
    ref_probs, ref_labels = _video_reference(logits, labels, videos)
    preds = ref_probs.argmax(1)
    ref = recall_score(ref_labels, preds, average=None, labels=np.arange(NUM_CLASSES))
    np.testing.assert_allclose(m.per_class_accuracy, ref)
    assert m.mean_class_accuracy == pytest.approx(balanced_accuracy_score(ref_labels, preds))


def test_class_without_videos_gets_nan_and_is_left_out_of_the_mean():
    logits = np.array([[3.0, 0.0, 0.0], [0.0, 0.0, 3.0], [3.0, 0.0, 0.0]])
    labels = np.array([0, 2, 2])  # class 1 has no videos
    m = compute_metrics(logits, labels, np.arange(3), 3)
    assert np.isnan(m.per_class_accuracy[1])
    assert m.mean_class_accuracy == pytest.approx(balanced_accuracy_score(labels, [0, 2, 0]))
    assert m.confusion.shape == (3, 3)


def test_topk_larger_than_class_count_counts_everything():
    logits = np.array([[0.0, 1.0], [1.0, 0.0]])
    assert topk_accuracy(logits, np.array([0, 1]), 5) == 1.0


def test_views_of_one_video_with_different_labels_are_rejected():
    with pytest.raises(ValueError, match="different labels"):
        video_scores(np.full((2, 3), 1 / 3), np.array([0, 1]), np.array([7, 7]))


def test_no_views_gives_nan_metrics_and_empty_confusion():
    m = compute_metrics(np.zeros((0, 4)), np.zeros(0, int), np.zeros(0, int), 4)
    assert np.isnan(m.video_top1) and np.isnan(m.clip_top1)
    assert m.confusion.sum() == 0


def test_accuracies_print_as_percent_and_missing_ones_as_n_a():
    assert format_percent(0.96875) == "96.88%"
    assert format_percent(0.96875, digits=1) == "96.9%"
    assert format_percent(None) == format_percent(float("nan")) == "n/a"
