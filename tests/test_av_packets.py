"""PyAV from the keyframe before a window: exactly the frames of a decode from the first packet.

The reference is independent of the code under test: `av.open` + `container.decode`, numbering
the frames as they come out, compared as raw YUV planes (no colour conversion in between).
"""

from __future__ import annotations

import av
import numpy as np
import pytest
from conftest import frame_index, index_image, make_video, trim_edit_list

from nlvideo.data.av_packets import PacketTable, decode_window
from nlvideo.data.sampling import uniform_clip_indices, window_indices
from nlvideo.data.video import PyAVReader, open_video

N = 60


def write(
    path, *, codec="libx264", options=None, container_options=None, start=0, gop=None, bframes=None
):
    """N frames of 96x64 drawing their index; frame i gets pts `start + i` (1/30 s)."""
    with av.open(str(path), "w", options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=30)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        stream.options = options or {}
        if gop is not None:
            stream.gop_size = gop
        if bframes is not None:
            stream.codec_context.max_b_frames = bframes
        for i in range(N):
            frame = av.VideoFrame.from_ndarray(index_image(i, 64, 96), format="rgb24")
            frame.pts = start + i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("seek")
    x264 = "crf=10:scenecut=0:keyint=12:min-keyint=12:bframes=3"
    return {
        # Closed GOPs of 10 with up to 3 B-frames (B-pyramid: some B-frames are references).
        "bframes": make_video(root / "bframes.mp4", N, gop=10, bframes=3),
        # Open GOPs: B-frames after an I-frame in decode order display before it.
        "open_gop": write(root / "open.mp4", options={"x264-params": x264 + ":open-gop=1"}),
        # Edit list that discards 10 frames at the start and 5 at the end.
        "edit_list_trim": trim_edit_list(
            make_video(root / "src.mp4", N, gop=12, bframes=2), root / "trim.mp4", 10, 5
        ),
        # Stream starting 7 frames late: an empty edit, timestamps not starting at zero.
        "start_offset": write(
            root / "start.mp4", options={"crf": "10", "bf": "2"}, start=7, gop=10
        ),
        "negative_cts": write(
            root / "negcts.mp4",
            options={"crf": "10", "bf": "3"},
            gop=10,
            container_options={"movflags": "negative_cts_offsets"},
        ),
        "mkv": write(root / "v.mkv", options={"x264-params": x264 + ":open-gop=1"}),
        "webm_vp9": write(
            root / "v.webm",
            codec="libvpx-vp9",
            gop=20,
            options={"crf": "10", "b": "0", "lag-in-frames": "16"},
        ),
        "avi_mpeg4": write(
            root / "v.avi", codec="mpeg4", options={"qscale": "2"}, gop=10, bframes=2
        ),
    }


def sequential_yuv(path) -> list[np.ndarray]:
    """Every frame as the decoder outputs it from the first packet (raw YUV planes)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        return [f.to_ndarray() for f in container.decode(stream)]


def windows(n: int) -> list[list[int]]:
    """Every single frame, 8x4 and 4x2 training windows at every third start, sparse pairs."""
    sets = [[i] for i in range(n)]
    for num, step in ((8, 4), (4, 2)):
        sets += [np.unique(window_indices(s, step, num, n)).tolist() for s in range(0, n, 3)]
    sets += [[i, min(i + 13, n - 1)] for i in range(0, n, 5)]
    views = uniform_clip_indices(n, num_frames=4, stride=2, num_clips=5)  # one read, 5 runs
    return [*sets, np.unique(views).tolist()]


def test_the_test_videos_have_what_they_are_named_for(videos):
    def packets(name):
        with av.open(str(videos[name])) as c:
            return [p for p in c.demux(video=0) if p.size]

    open_gop = packets("open_gop")
    leading = [
        i
        for i, p in enumerate(open_gop[1:], 1)
        if p.is_keyframe and any(q.pts < p.pts for q in open_gop[i + 1 : i + 4])
    ]
    assert leading, "no keyframe is followed (decode order) by frames that display before it"
    assert any(p.is_discard for p in packets("edit_list_trim"))
    assert packets("start_offset")[0].pts > 0
    assert any(p.pts != p.dts for p in packets("bframes"))  # B-frames reorder


@pytest.mark.parametrize(
    "kind",
    [
        "bframes",
        "open_gop",
        "edit_list_trim",
        "start_offset",
        "negative_cts",
        "mkv",
        "webm_vp9",
        "avi_mpeg4",
    ],
)
def test_seek_path_returns_exactly_the_frames_of_the_sequential_path(videos, kind):
    reference = sequential_yuv(videos[kind])
    with av.open(str(videos[kind])) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        table = PacketTable.demux(container, stream, container.format.name)
        assert table.num_frames == len(reference)
        assert table.seekable == (kind != "avi_mpeg4")  # AVI: decoded from the first packet
        for indices in windows(len(reference)):
            found = decode_window(stream.codec_context, table, indices, lambda f: f.to_ndarray())
            if not table.seekable:
                assert found is None
                continue
            assert found is not None, indices
            assert sorted(found) == indices
            for i in indices:
                assert np.array_equal(found[i], reference[i]), (indices, i)


class CountingCodec:
    """Wraps a codec context, counting the packets fed and the frames it outputs."""

    def __init__(self, codec):
        self._codec, self.packets, self.frames = codec, 0, 0

    def decode(self, packet):
        self.packets += packet is not None
        frames = self._codec.decode(packet)
        self.frames += len(frames)
        return frames

    def __getattr__(self, name):
        return getattr(self._codec, name)

    def __setattr__(self, name, value):
        if name.startswith("_") or name in ("packets", "frames"):
            object.__setattr__(self, name, value)
        else:
            setattr(self._codec, name, value)


def test_a_late_window_starts_at_its_keyframe_and_skips_unused_frames(videos):
    with av.open(str(videos["bframes"])) as container:  # keyframes every <= 10 frames
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        table = PacketTable.demux(container, stream, container.format.name)
        codec, converted = CountingCodec(stream.codec_context), []
        found = decode_window(codec, table, [43, 47, 51], lambda f: converted.append(1) or 0)
    assert sorted(found) == [43, 47, 51]
    assert len(converted) == 3  # only kept frames are converted
    key = max(k for k in table.keyframe_indices() if k <= 43)
    assert key > 30
    # From the keyframe before 43 to 51 and a few packets of B-frame delay, not from frame 0.
    assert codec.packets <= 51 - key + 1 + 4
    assert codec.frames < codec.packets  # non-reference frames nobody needs were skipped


@pytest.mark.parametrize("kind", ["open_gop", "edit_list_trim", "start_offset", "webm_vp9"])
def test_reader_seek_and_sequential_paths_agree_in_rgb(videos, kind):
    offset = 10 if kind == "edit_list_trim" else 0  # the trimmed file presents frames 10..54
    with (
        PyAVReader(str(videos[kind]), 40) as fast,
        PyAVReader(str(videos[kind]), 40, sequential=True) as slow,
    ):
        for indices in windows(fast.num_frames)[::7]:
            a, b = fast.read(np.array(indices)), slow.read(np.array(indices))
            assert np.array_equal(a, b)
            assert [frame_index(f) for f in a] == [i + offset for i in indices]


@pytest.mark.parametrize(
    "kind", ["bframes", "open_gop", "start_offset", "negative_cts", "mkv", "webm_vp9", "avi_mpeg4"]
)
def test_decord_frames_equal_pyav_frames(videos, kind):
    path = videos[kind]
    with open_video(path, backend="decord", allow_sequential=False) as a:
        frames = a.read(np.arange(a.num_frames))
    with open_video(path, backend="pyav") as b:
        assert b.num_frames == a.num_frames
        assert np.array_equal(frames, b.read(np.arange(b.num_frames)))
    assert [frame_index(f) for f in frames] == list(range(N))


def test_decord_backend_reads_seekable_files_from_its_pyav_open(videos, monkeypatch):
    import decord

    def unavailable(*args, **kwargs):
        raise AssertionError("decord opened a file that PyAV seeks in")

    monkeypatch.setattr(decord, "VideoReader", unavailable)
    with open_video(videos["open_gop"], backend="decord") as reader:
        frames = reader.read(np.array([[50, 54, 58], [3, 5, 7]]))
    assert [[frame_index(f) for f in clip] for clip in frames] == [[50, 54, 58], [3, 5, 7]]


def test_avi_with_b_frames_never_reaches_decords_wrong_seeks(videos):
    import decord

    scrambled = [50, 3, 20, 44, 0, 33, 34, 59, 1, 27]
    raw = decord.VideoReader(str(videos["avi_mpeg4"]), num_threads=1)
    assert [frame_index(f) for f in raw.get_batch(scrambled).asnumpy()] != scrambled  # why
    for allow_sequential in (True, False):
        kw = {"backend": "decord", "allow_sequential": allow_sequential}
        with open_video(videos["avi_mpeg4"], **kw) as reader:
            frames = reader.read(np.array(scrambled))
        assert [frame_index(f) for f in frames] == scrambled
