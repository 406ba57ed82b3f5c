"""Decode exactly the sampled frames of a video, as uint8 RGB.

Two backends with identical output (same frames, same order, same pixels), one open per reader:

* ``"pyav"``: opens and demuxes the file once (`av_packets.PacketTable`), then decodes each run
  of wanted frames from the keyframe before it up to its last frame, skipping non-reference
  frames nobody needs; frames are numbered as a decode from the first packet outputs them, so
  the result is that of the sequential decode (tests compare both on B-frames, open GOPs, edit
  lists). Containers without presentation timestamps (AVI) are decoded from the first packet.
* ``"decord"``: the same PyAV open is its probe, and reads that PyAV can start at a keyframe
  stay with PyAV (measured faster than decord: same frames decoded, non-reference ones
  skipped, no second open). Otherwise one `decord.VideoReader` with one thread and
  decode-time resize, unless decoding from the start is cheaper (`prefer_sequential`).

decord pitfalls handled here (each reproduced in tests/test_video.py):

* MP4 edit lists that trim a clip (common after stream-copy cutting) leave packets the decoder
  discards; decord counts them as frames and returns shifted or repeated frames, or hangs on
  the last indices. The container index says which samples are discarded, so such files are
  read with PyAV instead.
* decord fails at some decode-time widths (e.g. 48 or 72 pixels); any decord error falls back
  to PyAV for that file, which only fails if the file itself is broken.
* decord's seeks in AVI files with B-frames (MPEG-4 Part 2) return wrong frames; files whose
  packets are not in display order and that PyAV cannot start at a keyframe stay with PyAV.
* Display rotation is applied by both backends (decord does it itself).
* Any library can switch decord's process-wide bridge to torch (pytorchvideo does on import);
  both return types are accepted.
"""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nlvideo.data.av_packets import PacketTable, decode_from_start, decode_window
from nlvideo.data.frame_rgb import rgb_converter
from nlvideo.data.sampling import resized_shape

logger = logging.getLogger(__name__)

BACKENDS = ("decord", "pyav")
_MP4_FORMATS = ("mov", "mp4", "m4a", "3gp")


class VideoError(RuntimeError):
    """A video cannot be read; `reason` says why in a few words."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True)
class VideoFailure:
    """A video that could not be read: travels from the dataset to the evaluation report."""

    video_index: int  # index into the records
    path: str
    reason: str


@dataclass(frozen=True)
class VideoInfo:
    """What the container says, checked by decoding the first frame."""

    num_frames: int | None  # frames the decoder will output; None if the container cannot say
    fps: float  # average frame rate
    height: int  # displayed size (after rotation), before any resize
    width: int
    rotation: int  # quarter turns counter-clockwise to display the coded frame
    trimmed: bool  # the container marks some samples as discarded (edit list)
    keyframes: tuple[int, ...] | None = None  # frame numbers of keyframes, when the index says


def _check_file(path: str) -> None:
    try:
        size = os.stat(path).st_size
    except OSError as e:
        raise VideoError(path, "file not found") from e
    if size == 0:
        raise VideoError(path, "empty file (0 bytes)")


def _av_error(path: str, e: Exception) -> VideoError:
    message = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
    return VideoError(path, f"cannot decode ({type(e).__name__}: {message})")


def _open_av(path: str):
    """Open with PyAV, demux every video packet and decode the first frame.

    Returns:
        (container, stream, packet table, info); the container stays open for the reads.
    """
    import av

    _check_file(path)
    container = None
    try:
        container = av.open(path)
        if not container.streams.video:
            raise VideoError(path, "no video stream")
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        table = PacketTable.demux(container, stream, container.format.name)
        first = table.first_frame(stream.codec_context)
        if first is None or table.num_frames == 0:
            raise VideoError(path, "no decodable video frame")
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 30.0
        rotation = (int(first.rotation or 0) // 90) % 4
        height, width = first.height, first.width
        if rotation % 2:
            height, width = width, height
        info = VideoInfo(
            table.num_frames, fps, height, width, rotation, table.trimmed,
            table.keyframe_indices(),
        )  # fmt: skip
        return container, stream, table, info
    except Exception as e:
        if container is not None:
            container.close()
        if isinstance(e, VideoError):
            raise
        raise _av_error(path, e) from e


def probe(path: str | Path) -> VideoInfo:
    """What the container says about a video, checked by decoding its first frame (PyAV)."""
    with PyAVReader(str(path), None) as reader:
        return reader.info


class VideoReader(ABC):
    """An open video: `read(indices)` returns those frames as uint8 (..., H, W, 3)."""

    def __init__(self, path: str, info: VideoInfo, short_side: int | None):
        self.path = path
        self.info = info
        self.fps = info.fps
        self.height, self.width = resized_shape(info.height, info.width, short_side)

    @property
    @abstractmethod
    def num_frames(self) -> int:
        """Frames the sampler may index: [0, num_frames)."""

    @abstractmethod
    def _decode(self, indices: list[int]) -> np.ndarray:
        """Frames at sorted unique `indices`, (N, H, W, 3) uint8."""

    def read(self, indices: np.ndarray) -> np.ndarray:
        """Decode each distinct index once, then expand to `indices.shape + (H, W, 3)`."""
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size == 0:
            raise ValueError(f"{self.path}: no frame indices to read")
        if indices.min() < 0 or indices.max() >= self.num_frames:
            raise ValueError(
                f"{self.path}: frame indices must be in [0, {self.num_frames}), "
                f"got [{indices.min()}, {indices.max()}]"
            )
        unique, inverse = np.unique(indices, return_inverse=True)
        frames = self._decode(unique.tolist())
        return frames[inverse.reshape(indices.shape)]

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the decoder."""

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PyAVReader(VideoReader):
    """One PyAV open per reader: decodes from the keyframe before the first wanted frame up to
    the last one (see `av_packets`), or from the first packet where the stream needs it."""

    def __init__(self, path: str, short_side: int | None, *, sequential: bool = False):
        self._container, self._stream, self._table, info = _open_av(path)
        super().__init__(path, info, short_side)
        self._count = info.num_frames
        self._sequential = sequential  # always decode from the first packet (reference path)
        self.seekable = self._table.seekable and not sequential  # reads start at keyframes
        self.reordered = self._table.reordered  # decoded out of display order, or unknown

    @property
    def num_frames(self) -> int:
        return self._count

    def _converter(self):
        """Frame -> displayed RGB array at the output size (coded size before the rotation)."""
        h, w = (self.width, self.height) if self.info.rotation % 2 else (self.height, self.width)
        return rgb_converter(w, h, self.info.rotation)

    def _decode(self, indices: list[int]) -> np.ndarray:
        if self._container is None:
            raise ValueError(f"{self.path}: reader is closed")
        to_rgb = self._converter()
        try:
            found = None
            if not self._sequential:
                found = decode_window(self._stream.codec_context, self._table, indices, to_rgb)
            if found is None:
                return self._decode_sequential(indices, to_rgb)
        except VideoError:
            raise
        except Exception as e:
            raise _av_error(self.path, e) from e
        return np.stack([found[i] for i in indices])

    def _decode_sequential(self, indices: list[int], to_rgb) -> np.ndarray:
        """Decode from the first packet, numbering frames as the decoder outputs them."""
        codec = self._stream.codec_context
        found, count = decode_from_start(codec, self._table, indices, to_rgb)
        if not found:
            raise VideoError(self.path, "no decodable video frame")
        if count <= indices[-1]:
            # The container over-reported its length: repeat the last real frame.
            logger.warning("%s: %d frames decodable, %d expected", self.path, count, self._count)
            self._count = count
            return np.stack([found[min(i, count - 1)] for i in indices])
        return np.stack([found[i] for i in indices])

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = self._stream = None
            self._table = None


def _to_numpy(batch: object) -> np.ndarray:
    """decord returns its NDArray, or a torch tensor once any library (e.g. pytorchvideo)
    called `decord.bridge.set_bridge("torch")`, which is process-wide."""
    if torch.is_tensor(batch):
        return batch.numpy()
    return batch.asnumpy()


def prefer_sequential(indices: list[int], keyframes: Sequence[int] | None) -> bool:
    """Whether decoding from the first frame (PyAV) beats decord's seeks for these frames.

    A cost model fitted on 340x256 H.264 (GOP 16 and 250, 8x8 / 32x2 train windows, 3-10 test
    clips): decord decodes a frame it skips at ~0.55 units, returns one at ~3 and costs ~20
    to open; PyAV decodes every frame up to the last at ~1 and converts each returned one at
    ~0.5. Both paths give identical frames, so a wrong guess only costs time. Without a
    keyframe index decord is assumed to seek perfectly (every frame a keyframe).
    """
    touched, position = 0, -1  # frames decord decodes; last frame it decoded
    keys = np.asarray(keyframes if keyframes else [0])
    for index in indices:
        key = index if not keyframes else int(keys[np.searchsorted(keys, index, "right") - 1])
        touched += index - position if key <= position < index else index - key + 1
        position = index
    decord_cost = 0.55 * touched + 3.0 * len(indices) + 20
    pyav_cost = 1.0 * (indices[-1] + 1) + 0.5 * len(indices)
    return pyav_cost < decord_cost


class DecordReader(VideoReader):
    """decord with one thread for sparse reads; PyAV for dense ones and where decord fails.

    The PyAV reader it wraps is the probe (size, rotation, keyframes, edit lists) and reads
    the frames itself when that is cheaper, from the same open.
    """

    def __init__(self, av_reader: PyAVReader, short_side: int | None, allow_sequential: bool):
        super().__init__(av_reader.path, av_reader.info, short_side)
        self._av = av_reader
        self._allow_sequential = allow_sequential
        self._vr = None  # decord is opened only when a read needs it

    def _reader(self):
        if self._vr is None:
            import decord

            decord.logging.set_level(decord.logging.QUIET)
            try:
                self._vr = decord.VideoReader(
                    self.path,
                    ctx=decord.cpu(0),
                    width=self.width,
                    height=self.height,
                    num_threads=1,
                )
            except Exception as e:
                raise _av_error(self.path, e) from e
        return self._vr

    @property
    def num_frames(self) -> int:
        return self._av.num_frames

    def _pyav(self, indices: list[int]) -> np.ndarray:
        return self._av._decode(indices)

    def _decode(self, indices: list[int]) -> np.ndarray:
        if not self._av.seekable and self._av.reordered:  # decord's seeks return wrong frames
            return self._pyav(indices)
        if self._allow_sequential and (
            self._av.seekable or prefer_sequential(indices, self.info.keyframes)
        ):
            return self._pyav(indices)
        try:
            frames = _to_numpy(self._reader().get_batch(indices))
        except Exception as e:
            logger.warning("%s: decord failed (%s), decoding with PyAV", self.path, e)
            return self._pyav(indices)
        if frames.shape[1:3] != (self.height, self.width):
            raise VideoError(self.path, f"decord returned frames of shape {frames.shape}")
        return frames

    def close(self) -> None:
        self._vr = None
        self._av.close()


def open_video(
    path: str | Path,
    *,
    backend: str = "decord",
    short_side: int | None = None,
    allow_sequential: bool = True,
) -> VideoReader:
    """Open a video for reading frames.

    Args:
        path: Video file.
        backend: "decord" or "pyav" (identical output).
        short_side: Resize at decode time so the shorter side has this length; None keeps it.
        allow_sequential: Let the decord backend read dense index sets with PyAV when that is
            faster (same output); False forces decord (used to cross-check the backends).

    Raises:
        VideoError: missing, empty, not a video, no video stream, undecodable.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    reader = PyAVReader(str(path), short_side)
    if backend == "pyav":
        return reader
    if reader.info.trimmed:
        logger.info("%s: MP4 edit list trims frames; reading with PyAV", path)
        return reader
    return DecordReader(reader, short_side, allow_sequential)


def frames_to_clips(frames: np.ndarray) -> torch.Tensor:
    """(..., T, H, W, 3) uint8 frames -> (..., 3, T, H, W) contiguous uint8 tensor."""
    clips = torch.from_numpy(np.ascontiguousarray(frames))
    return clips.movedim(-1, -4).contiguous()  # (..., T, H, W, C) -> (..., C, T, H, W)


def read_clips(
    path: str | Path,
    indices: np.ndarray,
    *,
    backend: str = "decord",
    short_side: int | None = None,
) -> torch.Tensor:
    """Decode `indices` (K, T) from one open: uint8 tensor (K, 3, T, H, W)."""
    with open_video(path, backend=backend, short_side=short_side) as reader:
        return frames_to_clips(reader.read(indices))
