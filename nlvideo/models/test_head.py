"""The references' test-time head: fixed-window average pool, softmax at each position, mean.

PySlowFast's ``ResNetBasicHead`` average-pools res5 with a fixed window, the size of a
training clip's res5 map (``NUM_FRAMES // pool1_t`` x ``TRAIN_CROP_SIZE // 32`` x the same),
stride 1, applies the classifier at every window position and, at test time, the softmax at
each position before averaging them. video-nonlocal-net's ``TEST_FULLY_CONV`` test does the
same (``pool5`` of ``T/8 x 7 x 7``, a 1x1x1 conv classifier, softmax, mean over T, H, W). A 256
test crop therefore gives a 2x2 grid of predictions per view, where our default head pools
globally and classifies once. This module scores views the references' way; it returns the log
of the mean probabilities, so the softmax that evaluation applies to "logits" gives them back.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from nlvideo.models.resnet3d import VideoResNet

SPATIAL_STRIDE = 32  # res5 of a C2D/I3D ResNet is 1/32 of the crop


def window_softmax_log_probs(
    features: Tensor, classifier: nn.Linear, window: Sequence[int]
) -> Tensor:
    """Mean over window positions of the softmax of the classifier on window averages.

    Args:
        features: res5 features (N, C, T, H, W).
        classifier: The linear layer applied to each pooled C-vector.
        window: (t, h, w) average-pool window, stride 1; clipped to the feature map's size.

    Returns:
        (N, num_classes) log of the averaged probabilities.
    """
    kernel = tuple(min(int(k), s) for k, s in zip(window, features.shape[2:], strict=True))
    pooled = F.avg_pool3d(features, kernel, stride=1)  # (N, C, t', h', w')
    logits = classifier(pooled.permute(0, 2, 3, 4, 1))  # (N, t', h', w', K)
    return logits.float().softmax(-1).mean((1, 2, 3)).log()


class SlowFastTestHead(nn.Module):
    """Wraps a VideoResNet for evaluation: the references' head in eval mode.

    Args:
        model: The network (its state dict is unchanged: this wrapper owns no tensors).
        num_frames: Training clip length (``data.num_frames``).
        train_crop: Training crop size (``data.crop_size``).
    """

    def __init__(self, model: VideoResNet, *, num_frames: int, train_crop: int) -> None:
        super().__init__()
        self.model = model
        self.window = (
            max(1, num_frames // model.temporal_stride),
            max(1, train_crop // SPATIAL_STRIDE),
            max(1, train_crop // SPATIAL_STRIDE),
        )
        self.train(model.training)

    def forward(self, clips: Tensor) -> Tensor:
        if self.training:
            return self.model(clips)
        features = self.model.forward_features(clips)
        return window_softmax_log_probs(features, self.model.blocks[-1].proj, self.window)


def with_test_head(model: nn.Module, head: str, *, num_frames: int, train_crop: int) -> nn.Module:
    """``model`` as evaluation should call it: as is ("global") or wrapped ("slowfast")."""
    if head == "global":
        return model
    if head != "slowfast":
        raise ValueError(f"model.test_head: expected global or slowfast, got {head!r}")
    return SlowFastTestHead(model, num_frames=num_frames, train_crop=train_crop)
