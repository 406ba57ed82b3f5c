"""Decoding: exactly the sampled frames, decord and PyAV identical, decord pitfalls handled."""

from __future__ import annotations

import gc
import logging
import weakref

import av
import decord
import numpy as np
import pytest
import torch
from conftest import clip_indices, frame_index, make_video, trim_edit_list

from nlvideo.data.sampling import resized_shape, uniform_clip_indices, window_indices
from nlvideo.data.video import VideoError, open_video, prefer_sequential, probe, read_clips

BACKENDS = ["decord", "pyav"]
SCRAMBLED = np.array([[50, 3, 3, 20], [44, 0, 33, 34], [59, 59, 1, 2]])


def read(path, indices, backend, short_side=None):
    """Read with `backend` itself: no switching of dense reads to sequential PyAV decoding."""
    with open_video(path, backend=backend, short_side=short_side, allow_sequential=False) as r:
        return r.read(np.asarray(indices))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("video", ["v60", "bframes", "mkv"])
def test_reads_exactly_the_requested_frames_in_order(sample_videos, backend, video):
    indices = np.minimum(SCRAMBLED, 49)  # the mkv has 50 frames
    frames = read(sample_videos[video], indices, backend)
    assert frames.shape == (*indices.shape, 64, 96, 3) and frames.dtype == np.uint8
    assert [[frame_index(f) for f in row] for row in frames] == indices.tolist()


@pytest.mark.parametrize("video", ["v60", "bframes", "mkv", "portrait", "five"])
@pytest.mark.parametrize("short_side", [None, 40])
def test_decord_and_pyav_give_identical_pixels(sample_videos, video, short_side):
    path = sample_videos[video]
    with open_video(path, backend="decord", short_side=short_side, allow_sequential=False) as a:
        n = a.num_frames
        first = a.read(np.arange(n))
    with open_video(path, backend="pyav", short_side=short_side) as b:
        assert b.num_frames == n and b.fps == a.fps
        second = b.read(np.arange(n))
    assert np.array_equal(first, second)


@pytest.mark.parametrize("backend", BACKENDS)
def test_metadata_matches_what_was_written(sample_videos, backend):
    with open_video(sample_videos["v45"], backend=backend) as reader:
        assert (reader.num_frames, reader.fps, reader.height, reader.width) == (45, 15.0, 48, 64)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("video", "short_side"), [("v60", 40), ("portrait", 40), ("v60", 128)])
def test_decode_time_resize_scales_the_short_side(sample_videos, backend, video, short_side):
    path = sample_videos[video]
    info = probe(path)
    frames = read(path, [5, 1], backend, short_side)
    assert frames.shape[1:3] == resized_shape(info.height, info.width, short_side)
    assert [frame_index(f) for f in frames] == [5, 1]


def test_one_frame_video_reads_its_frame(sample_videos):
    for backend in BACKENDS:
        assert [frame_index(f) for f in read(sample_videos["one"], [0, 0], backend)] == [0, 0]


def test_read_clips_returns_channels_first_clips(sample_videos):
    indices = np.array([[0, 8, 16], [40, 48, 56]])
    clips = read_clips(sample_videos["v60"], indices)
    assert clips.shape == (2, 3, 3, 64, 96)
    assert [clip_indices(c.numpy()) for c in clips] == indices.tolist()


def test_out_of_range_indices_are_rejected(sample_videos):
    with (
        open_video(sample_videos["five"]) as reader,
        pytest.raises(ValueError, match=r"must be in \[0, 5\)"),
    ):
        reader.read(np.array([0, 5]))


def test_probe_lists_the_keyframes_of_an_mp4(sample_videos):
    with av.open(str(sample_videos["bframes"])) as container:
        decoded = tuple(i for i, f in enumerate(container.decode(video=0)) if f.key_frame)
    assert probe(sample_videos["bframes"]).keyframes == decoded
    # Matroska has no sample index: the keyframes come from the demuxed packets.
    with av.open(str(sample_videos["mkv"])) as container:
        decoded = tuple(i for i, f in enumerate(container.decode(video=0)) if f.key_frame)
    assert probe(sample_videos["mkv"]).keyframes == decoded


def unique(indices) -> list[int]:
    return np.unique(indices).tolist()


def test_dense_reads_decode_sequentially_sparse_late_ones_seek():
    gop16 = tuple(range(0, 300, 16))
    test_views = unique(uniform_clip_indices(300, num_frames=8, stride=8, num_clips=10))
    assert prefer_sequential(test_views, gop16)
    assert prefer_sequential(list(range(300)), gop16)
    assert prefer_sequential(list(range(300)), None)  # even if decord could seek anywhere
    assert prefer_sequential(unique(window_indices(0, 2, 32, 300)), gop16)  # 32x2 at the start
    assert not prefer_sequential(unique(window_indices(200, 8, 8, 300)), gop16)
    assert not prefer_sequential(unique(window_indices(200, 8, 8, 300)), None)
    # One keyframe: decord decodes from frame 0 as well, but skips frames more cheaply.
    assert not prefer_sequential(unique(window_indices(100, 8, 8, 300)), (0,))


@pytest.mark.parametrize("allow_sequential", [True, False])
def test_decord_backend_is_exact_whichever_path_it_takes(sample_videos, allow_sequential):
    views = uniform_clip_indices(60, num_frames=8, stride=4, num_clips=5)
    kw = {"backend": "decord", "allow_sequential": allow_sequential}
    with open_video(sample_videos["bframes"], **kw) as reader:
        frames = reader.read(views)
    assert [[frame_index(f) for f in clip] for clip in frames] == views.tolist()


# ----------------------------------------------------------------------------- decord pitfalls
@pytest.fixture(scope="module")
def trimmed(tmp_path_factory):
    """60 written frames; the edit list presents frames 10..54 only (45 frames)."""
    root = tmp_path_factory.mktemp("trimmed")
    src = make_video(root / "src.mp4", 60, gop=12, bframes=2)
    return trim_edit_list(src, root / "trimmed.mp4", skip_start=10, skip_end=5)


def test_raw_decord_miscounts_and_misplaces_frames_of_a_trimmed_mp4(trimmed):
    # Why open_video does not trust decord with such files.
    vr = decord.VideoReader(str(trimmed), num_threads=1)
    got = [frame_index(f) for f in vr.get_batch(list(range(0, 30, 3))).asnumpy()]
    assert len(vr) != 45 or got != list(range(10, 40, 3))


@pytest.mark.parametrize("backend", BACKENDS)
def test_trimmed_mp4_reads_the_presented_frames(trimmed, backend):
    with open_video(trimmed, backend=backend) as reader:
        assert reader.num_frames == 45
        frames = reader.read(np.array([44, 0, 3, 30, 31]))
    assert [frame_index(f) for f in frames] == [54, 10, 13, 40, 41]


def test_decord_resize_bug_falls_back_to_identical_pyav_output(sample_videos):
    # decord fails to resize to some widths (48 here: 96x64 -> 48x32).
    frames = read(sample_videos["v60"], [7, 2], "decord", short_side=32)
    assert frames.shape == (2, 32, 48, 3)
    assert np.array_equal(frames, read(sample_videos["v60"], [7, 2], "pyav", short_side=32))


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_display_rotation_is_applied_by_both_backends(tmp_path, rotation):
    path = make_video(tmp_path / "rot.mp4", 6, rotation=rotation)
    decoded = {b: read(path, [4, 1], b, short_side=40) for b in BACKENDS}
    expected_hw = (60, 40) if rotation % 180 else (40, 60)
    assert decoded["decord"].shape[1:3] == expected_hw
    assert np.array_equal(decoded["decord"], decoded["pyav"])
    upright = [np.rot90(f, -rotation // 90) for f in decoded["pyav"]]
    assert [frame_index(f) for f in upright] == [4, 1]


# ----------------------------------------------------------------------------- broken files
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("missing", "file not found"),
        ("zero", "empty file"),
        ("truncated", "cannot decode"),
        ("text", "cannot decode"),
        ("audio_only", "no video stream"),
    ],
)
def test_broken_files_raise_video_error_with_a_reason(broken_files, backend, kind, reason):
    with pytest.raises(VideoError, match=reason) as e:
        read(broken_files[kind], [0, 1, 2], backend)
    assert e.value.path == str(broken_files[kind])


def test_decord_reader_works_whatever_bridge_another_library_set(sample_videos, caplog):
    # pytorchvideo sets decord's process-wide bridge to torch when imported.
    decord.bridge.set_bridge("torch")
    try:
        with caplog.at_level(logging.WARNING):
            frames = read(sample_videos["v60"], [3, 9], "decord")
    finally:
        decord.bridge.set_bridge("native")
    assert isinstance(frames, np.ndarray) and [frame_index(f) for f in frames] == [3, 9]
    assert "decord failed" not in caplog.text  # decord itself read them, no PyAV fallback


def test_a_decord_read_keeps_no_decoded_batch_alive(sample_videos, monkeypatch):
    # A long run reads millions of clips: nothing may hold on to the frames decord returned.
    alive = []
    get_batch = decord.VideoReader.get_batch

    def recording(self, indices):
        batch = get_batch(self, indices)
        alive.append(weakref.ref(batch))
        return batch

    monkeypatch.setattr(decord.VideoReader, "get_batch", recording)
    decord.bridge.set_bridge("torch")  # tensors, which can be weakly referenced
    try:
        for window in ([3, 9], [10, 11]):
            frames = read(sample_videos["v60"], window, "decord")
    finally:
        decord.bridge.set_bridge("native")
    del frames
    gc.collect()
    assert len(alive) == 2 and all(ref() is None for ref in alive)


# ----------------------------------------------------------------------------- other containers
@pytest.fixture(scope="module")
def containers(tmp_path_factory):
    """The same 40 frames as UCF101/HMDB51 AVI (MPEG-4 Part 2), SSv2 WebM (VP9) and MKV."""
    root = tmp_path_factory.mktemp("containers")
    return {
        "avi": make_video(root / "v.avi", 40, codec="mpeg4"),
        "webm": make_video(root / "v.webm", 40, codec="libvpx-vp9"),
        "mkv": make_video(root / "v.mkv", 40),
    }


@pytest.mark.parametrize("kind", ["avi", "webm", "mkv"])
@pytest.mark.parametrize("short_side", [None, 40])
def test_avi_webm_and_mkv_decode_identically_through_both_backends(containers, kind, short_side):
    path = containers[kind]
    frames = {}
    for backend in BACKENDS:
        with open_video(path, backend=backend, short_side=short_side, allow_sequential=False) as r:
            assert (r.num_frames, r.fps) == (40, 30.0)
            frames[backend] = r.read(np.minimum(SCRAMBLED, 39))
    assert np.array_equal(frames["decord"], frames["pyav"])
    assert [[frame_index(f) for f in row] for row in frames["pyav"]] == np.minimum(
        SCRAMBLED, 39
    ).tolist()


def test_interleaved_reads_of_other_sizes_give_each_video_its_own_pixels(sample_videos):
    """The swscale context is reused across reads: a read after one of another size, shape or
    output size gives the same pixels as PyAV's own conversion of that video."""

    def reference(path):
        with av.open(str(path)) as c:
            return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)][:3])

    order = ["v60", "portrait", "v45", "v60", "v45", "portrait"]
    for name, short_side in zip(order, [None, None, 40, None, None, 40], strict=True):
        got = read(sample_videos[name], [0, 1, 2], "pyav", short_side)
        if short_side is None:
            assert np.array_equal(got, reference(sample_videos[name])), name
        else:
            assert got.shape[1:3] == resized_shape(*reference(sample_videos[name]).shape[1:3], 40)


class _ReadFirstFrames(torch.utils.data.Dataset):
    def __init__(self, path):
        self.path = path

    def __len__(self):
        return 2

    def __getitem__(self, i):
        return torch.from_numpy(read(self.path, [0, 1, 2], "pyav").copy())


def test_a_forked_worker_reads_after_its_parent_did(sample_videos):
    """The parent's swscale context must be neither used nor freed in a forked DataLoader
    worker (it hung there: FFmpeg's scaler threads do not exist in the child)."""
    path = sample_videos["v60"]
    expected = read(path, [0, 1, 2], "pyav")  # the parent now holds a context
    loader = torch.utils.data.DataLoader(
        _ReadFirstFrames(path), num_workers=1, timeout=60, multiprocessing_context="fork"
    )
    for batch in loader:
        assert np.array_equal(batch[0].numpy(), expected)
