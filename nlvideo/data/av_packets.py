"""PyAV decoding from the packets of one open: seek to the keyframe before a window, decode only
up to its last frame, skip the frames that nothing needs.

A video is opened once and demuxed once (`PacketTable`); its packets stay in memory, so a read
feeds the decoder directly from the keyframe packet before the first wanted frame, with no
container seek (whose index is in decode timestamps and misses B-frames that display before a
keyframe). Frames are numbered as a decoder that starts at the first packet outputs them: the
n-th smallest presentation timestamp among the packets that are not discarded (edit lists).

While a packet no kept frame comes from is fed, the decoder skips the frame if it is a
non-reference one (`skip_frame = "NONREF"`): no other frame predicts from it, so every kept
frame decodes to the same pixels, and the skipped frame costs nothing. A frame is kept only if
it displays at or after the keyframe the decode started from (the leading frames of an open GOP
predict from the previous GOP), so whatever the decoder does with those, the kept ones are the
sequential decoder's. If a wanted frame does not come out (a stream that breaks these rules),
`decode_window` returns None and the caller decodes from the first packet instead.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# Containers whose demuxer gives every packet its presentation timestamp. Others (AVI with
# MPEG-4 Part 2 packed B-frames, raw streams) are decoded from the first packet.
SEEKABLE_FORMATS = ("mov", "mp4", "m4a", "3gp", "matroska", "webm")


@dataclass
class PacketTable:
    """The video packets of a file in decode order, with the presented frames' timestamps."""

    packets: list  # av.Packet, decode order, empty packets dropped
    frame_pts: np.ndarray  # presentation timestamps of the presented frames, display order
    key_positions: np.ndarray  # positions in `packets` of the keyframes, increasing
    key_pts: np.ndarray  # their presentation timestamps
    seekable: bool  # every packet has a timestamp and the container gives presentation ones
    reordered: bool  # frames are decoded out of display order (B-frames), or it cannot say
    trimmed: bool  # some packets are decoded but not presented (edit list)

    @classmethod
    def demux(cls, container, stream, format_name: str) -> PacketTable:
        """Read every packet of `stream` (one pass over the file, no decoding)."""
        packets = [p for p in container.demux(stream) if p.size]
        pts = [p.pts for p in packets]
        discard = [p.is_discard for p in packets]
        has_pts = None not in pts
        seekable = has_pts and any(name in format_name for name in SEEKABLE_FORMATS)
        if has_pts:
            shown = np.sort(
                np.array([t for t, d in zip(pts, discard, strict=True) if not d], dtype=np.int64)
            )
            seekable = seekable and bool(np.all(np.diff(shown) > 0))  # distinct timestamps
        else:
            shown = np.zeros(sum(not d for d in discard), dtype=np.int64)
        keys = [i for i, p in enumerate(packets) if p.is_keyframe]  # discarded ones too
        return cls(
            packets=packets,
            frame_pts=shown,
            key_positions=np.array(keys, dtype=np.int64),
            key_pts=np.array([pts[i] for i in keys] if has_pts else [], dtype=np.int64),
            seekable=seekable,
            reordered=not has_pts or any(b < a for a, b in itertools.pairwise(pts)),
            trimmed=any(discard),
        )

    @property
    def num_frames(self) -> int:
        return len(self.frame_pts)

    def first_frame(self, codec):
        """The first frame the decoder outputs (size, rotation, decodability), or None."""
        try:
            for packet in self.packets:
                for frame in codec.decode(packet):
                    return frame
            for frame in codec.decode(None):
                return frame
            return None
        finally:
            codec.flush_buffers()

    def keyframe_indices(self) -> tuple[int, ...] | None:
        """Display indices of the first frames decodable from each keyframe (None if the
        timestamps cannot say)."""
        if not self.seekable:
            return None
        return tuple(np.unique(np.searchsorted(self.frame_pts, self.key_pts)).tolist())

    def start_position(self, first_pts: int) -> int | None:
        """Packet position of the last keyframe (in decode order) displayed at or before
        `first_pts`, None if there is none."""
        ok = np.nonzero(self.key_pts <= first_pts)[0]
        return int(self.key_positions[ok[-1]]) if ok.size else None


def decode_from_start(
    codec, table: PacketTable, indices: list[int], convert: Callable[[object], np.ndarray]
) -> tuple[dict[int, np.ndarray], int]:
    """The sequential path: decode from the first packet, the n-th frame out being frame n.

    Returns:
        ({index: converted frame}, frames decoded); if the stream ends before `indices[-1]`,
        its last frame is also returned under its own index (count - 1).
    """
    wanted, last = set(indices), indices[-1]
    found: dict[int, np.ndarray] = {}
    count, frame = 0, None

    def frames():
        for packet in table.packets:
            yield from codec.decode(packet)
        yield from codec.decode(None)

    codec.flush_buffers()
    try:
        for count, frame in enumerate(frames(), 1):
            if count - 1 in wanted:
                found[count - 1] = convert(frame)
            if count > last:
                break
        if count <= last and frame is not None:
            found[count - 1] = convert(frame)
    finally:
        codec.flush_buffers()
    return found, count


def decode_window(
    codec,
    table: PacketTable,
    indices: list[int],
    convert: Callable[[object], np.ndarray],
) -> dict[int, np.ndarray] | None:
    """Frames at sorted unique `indices`, each run decoded from the keyframe before it.

    A new run starts wherever a keyframe lies after the previous wanted frame (e.g. between
    the clips of the test views), so the frames between are neither decoded nor read.

    Args:
        codec: The stream's opened codec context (one thread); flushed before and after.
        table: The stream's packets.
        indices: Sorted unique display indices, all < `table.num_frames`.
        convert: Turns a kept `av.VideoFrame` into the returned array.

    Returns:
        {index: converted frame} for every index, or None if the stream does not allow this
        path (the caller then decodes from the first packet).
    """
    if not table.seekable:
        return None
    found: dict[int, np.ndarray] = {}
    try:
        for run in _runs(table, indices):
            if not _decode_run(codec, table, run, convert, found):
                return None
    finally:
        codec.skip_frame = "DEFAULT"
        codec.flush_buffers()
    return found


def _runs(table: PacketTable, indices: list[int]) -> list[list[int]]:
    """Split `indices` where a keyframe lies after the previous one."""
    keys = np.searchsorted(table.frame_pts, table.key_pts)  # first display index per key
    runs: list[list[int]] = []
    for index in indices:
        if runs and not np.any((keys > runs[-1][-1]) & (keys <= index)):
            runs[-1].append(index)
        else:
            runs.append([index])
    return runs


def _decode_run(codec, table: PacketTable, run: list[int], convert, found: dict) -> bool:
    """Decode `run` from the keyframe before its first frame into `found`; False if a frame
    did not come out."""
    wanted = {int(table.frame_pts[i]): i for i in run}
    start = table.start_position(int(table.frame_pts[run[0]]))
    if start is None:
        return False
    floor_pts = int(table.packets[start].pts)  # frames before the keyframe may be corrupt
    last_pts = int(table.frame_pts[run[-1]])
    codec.flush_buffers()
    need, skipping = len(found) + len(run), None
    for packet in table.packets[start:]:
        skip = packet.pts not in wanted
        if skip is not skipping:  # the setter is cheap but not free
            codec.skip_frame = "NONREF" if skip else "DEFAULT"
            skipping = skip
        for frame in codec.decode(packet):
            _keep(frame, wanted, floor_pts, found, convert)
        if len(found) == need or (packet.dts is not None and packet.dts > last_pts):
            # Decode timestamps only grow and never exceed presentation ones: no later
            # packet can hold a wanted frame.
            break
    if len(found) < need:
        for frame in codec.decode(None):  # drain the frames still held for reordering
            _keep(frame, wanted, floor_pts, found, convert)
    return len(found) == need


def _keep(frame, wanted: dict[int, int], floor_pts: int, found: dict, convert) -> None:
    index = wanted.get(frame.pts)
    if index is not None and frame.pts >= floor_pts and index not in found:
        found[index] = convert(frame)
