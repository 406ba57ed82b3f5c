"""Device transforms against by-hand references (slicing, F.interpolate) and the prefetcher."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nlvideo.data.dataset import ClipBatch
from nlvideo.data.sampling import crop_offsets, resized_shape
from nlvideo.data.transforms import (
    KINETICS_MEAN,
    KINETICS_STD,
    TestTransform,
    TrainParams,
    TrainTransform,
    prefetch,
    to_device,
)
from nlvideo.data.video import VideoFailure

CROP = 16
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def random_clips(n=4, t=3, h=20, w=28, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, t, h, w), generator=g, dtype=torch.uint8)


def reference_normalize(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(KINETICS_MEAN).view(1, 3, 1, 1, 1)
    std = torch.tensor(KINETICS_STD).view(1, 3, 1, 1, 1)
    return (x.float() / 255 - mean) / std


def reference_scale(clip: torch.Tensor, short: int) -> torch.Tensor:
    """Resize one (3, T, H, W) clip so its short side is `short`, frame by frame."""
    h, w = resized_shape(clip.shape[-2], clip.shape[-1], short)
    frames = clip.float().transpose(0, 1)  # (3, T, H, W) -> (T, 3, H, W)
    out = F.interpolate(frames, size=(h, w), mode="bilinear", align_corners=False)
    return out.transpose(0, 1)


def train_transform(**kw) -> TrainTransform:
    return TrainTransform(crop_size=CROP, scale=(20, 26), **kw)


def views_transform(**kw) -> TestTransform:
    return TestTransform(crop_size=CROP, scale=20, **kw)


def test_normalisation_uses_kinetics_mean_and_std():
    x = torch.tensor([0.0, 255.0]).view(1, 1, 2).expand(1, 3, 2)
    out = TestTransform().normalize(x)
    assert torch.allclose(out[0, :, 0], torch.full((3,), -2.0))
    assert torch.allclose(out[0, :, 1], torch.full((3,), 0.55 / 0.225))


@pytest.mark.parametrize(
    ("scale", "y", "x", "flip"),
    [
        ([20, 20, 20, 20], [0, 4, 2, 1], [0, 12, 5, 7], [False, False, True, True]),  # crop only
        ([23, 26, 21, 25], [3, 0, 5, 9], [9, 20, 0, 3], [True, False, False, True]),
    ],
)
def test_train_scale_and_crop_equal_interpolate_then_slice(scale, y, x, flip):
    clips = random_clips()
    params = TrainParams(*map(torch.tensor, (scale, y, x, flip)))
    out = train_transform().apply_params(clips, params)
    assert out.shape == (4, 3, 3, CROP, CROP) and out.dtype == torch.float32
    for i in range(4):
        scaled = reference_scale(clips[i], scale[i])  # the identity at scale 20
        crop = scaled[None, :, :, y[i] : y[i] + CROP, x[i] : x[i] + CROP]
        if flip[i]:
            crop = crop.flip(-1)
        assert torch.allclose(out[i : i + 1], reference_normalize(crop), atol=1e-3)


def test_train_params_stay_inside_the_scaled_frame_and_flip_half_the_time():
    params = train_transform(seed=0).sample_params(2000, 20, 28)
    assert params.scale.min() == 20 and params.scale.max() == 26
    for s, y, x in zip(params.scale.tolist(), params.y.tolist(), params.x.tolist(), strict=True):
        h, w = resized_shape(20, 28, s)
        assert 0 <= y <= h - CROP and 0 <= x <= w - CROP
    assert 0.45 < params.flip.float().mean() < 0.55


def test_train_transform_is_reproducible_with_a_seed():
    clips = random_clips()
    a, b = train_transform(seed=3)(clips), train_transform(seed=3)(clips)
    c = train_transform(seed=4)(clips)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_no_flip_option_never_flips():
    assert not train_transform(flip=False, seed=0).sample_params(100, 20, 28).flip.any()


@pytest.mark.parametrize(("h", "w"), [(20, 28), (28, 20)])
@pytest.mark.parametrize("num_crops", [1, 3])
def test_test_crops_equal_slicing_in_view_order(h, w, num_crops):
    clips = random_clips(n=2, h=h, w=w)
    out = views_transform(num_crops=num_crops)(clips)
    assert out.shape == (2 * num_crops, 3, 3, CROP, CROP)
    for i in range(2):
        for k, (y, x) in enumerate(crop_offsets(h, w, CROP, num_crops)):
            expected = reference_normalize(clips[i : i + 1, ..., y : y + CROP, x : x + CROP])
            assert torch.allclose(out[i * num_crops + k], expected[0], atol=1e-5)


def test_test_transform_rescales_when_the_decoder_did_not():
    clips = random_clips(n=1, h=24, w=30)
    out = views_transform()(clips)
    scaled = reference_scale(clips[0], 20)[None]
    for k, (y, x) in enumerate(crop_offsets(*scaled.shape[-2:], CROP, 3)):
        expected = reference_normalize(scaled[..., y : y + CROP, x : x + CROP])
        assert torch.allclose(out[k], expected[0], atol=1e-3)


def test_mixed_sizes_give_the_same_result_as_one_video_at_a_time():
    videos = [random_clips(2, h=20, w=28, seed=1), random_clips(1, h=28, w=20), random_clips(3)]
    transform = views_transform()
    out = transform(videos)
    assert torch.equal(out, torch.cat([transform(v) for v in videos]))


def make_batch(clip_index, labels, video_index, failed=()) -> ClipBatch:
    n = len(labels)
    return ClipBatch(
        clips=random_clips(n=n),
        labels=torch.tensor(labels),
        video_index=torch.tensor(video_index),
        view_index=torch.tensor(clip_index),
        failed=list(failed),
        replaced=2,
    )


def test_to_device_expands_labels_and_numbers_views_in_test_mode():
    failure = VideoFailure(12, "x.mp4", "bad")
    batch = make_batch([0, 1, 0], [5, 5, 7], [10, 10, 11], failed=[failure])
    out = to_device(batch, "cpu", views_transform())
    assert out.clips.shape == (9, 3, 3, CROP, CROP)
    assert out.labels.tolist() == [5] * 6 + [7] * 3
    assert out.video_index.tolist() == [10] * 6 + [11] * 3
    assert out.view_index.tolist() == [0, 1, 2, 3, 4, 5, 0, 1, 2]
    assert out.failed == [failure] and out.replaced == 2


def test_to_device_keeps_one_clip_per_row_in_train_mode():
    batch = make_batch([0, 1, 0], [5, 5, 7], [10, 10, 11])
    out = to_device(batch, "cpu", train_transform(seed=0))
    assert out.clips.shape == (3, 3, 3, CROP, CROP)
    assert out.labels.tolist() == [5, 5, 7] and out.view_index.tolist() == [0, 0, 0]


def test_cpu_prefetch_equals_the_plain_loop():
    batches = [make_batch([0], [1], [0]), make_batch([0, 1], [2, 2], [1, 1])]
    transform = views_transform()
    for got, batch in zip(prefetch(batches, "cpu", transform), batches, strict=True):
        assert torch.equal(got.clips, to_device(batch, "cpu", transform).clips)


@pytest.mark.parametrize(
    ("make", "kw"),
    [
        (TestTransform, {"num_crops": 2}),
        (TestTransform, {"crop_size": 224, "scale": 100}),
        (TrainTransform, {"crop_size": 224, "scale": (200, 300)}),
        (TrainTransform, {"scale": (300, 200)}),
        (TrainTransform, {"mean": (0.5, 0.5)}),
    ],
)
def test_bad_transform_arguments_raise(make, kw):
    with pytest.raises(ValueError):
        make(**kw)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("mode", ["train", "test"])
def test_cuda_transform_matches_cpu(mode):
    clips = random_clips(n=8, t=4, h=40, w=56)

    def make():
        if mode == "train":
            return TrainTransform(crop_size=32, scale=(40, 52), seed=0)
        return TestTransform(crop_size=32, scale=40)

    cpu = make()(clips)
    cuda = make()(clips.cuda())
    assert torch.allclose(cuda.cpu(), cpu, atol=1e-3)


@pytest.mark.gpu
@needs_cuda
def test_cuda_prefetch_overlaps_and_matches_cpu():
    batches = [make_batch([0, 1, 2], [1, 1, 1], [0, 0, 0]).pin_memory() for _ in range(4)]
    transform = views_transform()
    got = list(prefetch(batches, "cuda", transform))
    assert len(got) == 4 and got[0].clips.is_cuda
    for g, b in zip(got, batches, strict=True):
        assert torch.allclose(g.clips.cpu(), to_device(b, "cpu", transform).clips, atol=1e-5)
