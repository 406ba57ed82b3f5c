"""Data: annotations -> frame sampling -> decoding -> uint8 dataset -> device transforms."""

from __future__ import annotations

from nlvideo.data.annotations import (
    AnnotationError,
    Problem,
    ValidationReport,
    VideoRecord,
    kinetics_filename,
    load_classes,
    load_kinetics_csv,
    load_video_list,
    save_classes,
    validate_records,
)
from nlvideo.data.dataset import (
    ClipBatch,
    VideoClipDataset,
    VideoItem,
    build_loader,
    collate_items,
    worker_init,
)
from nlvideo.data.gpu import (
    KINETICS_MEAN,
    KINETICS_STD,
    DeviceBatch,
    DeviceTransform,
    prefetch,
    to_device,
)
from nlvideo.data.video import VideoError, VideoInfo, open_video, probe, read_clips

__all__ = [
    "KINETICS_MEAN",
    "KINETICS_STD",
    "AnnotationError",
    "ClipBatch",
    "DeviceBatch",
    "DeviceTransform",
    "Problem",
    "ValidationReport",
    "VideoClipDataset",
    "VideoError",
    "VideoInfo",
    "VideoItem",
    "VideoRecord",
    "build_loader",
    "collate_items",
    "kinetics_filename",
    "load_classes",
    "load_kinetics_csv",
    "load_video_list",
    "open_video",
    "prefetch",
    "probe",
    "read_clips",
    "save_classes",
    "to_device",
    "validate_records",
    "worker_init",
]
