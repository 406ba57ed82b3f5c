"""Data: annotations -> sampling -> decoding -> uint8 dataset -> loader -> device transforms."""

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
from nlvideo.data.classes import NamedRecord
from nlvideo.data.dataset import ClipBatch, VideoClipDataset, VideoItem, collate_items
from nlvideo.data.loader import build_loader
from nlvideo.data.transforms import (
    KINETICS_MEAN,
    KINETICS_STD,
    DeviceBatch,
    TestTransform,
    TrainTransform,
    prefetch,
    to_device,
)
from nlvideo.data.video import VideoError, VideoFailure, VideoInfo, open_video, probe, read_clips

__all__ = [
    "KINETICS_MEAN",
    "KINETICS_STD",
    "AnnotationError",
    "ClipBatch",
    "DeviceBatch",
    "NamedRecord",
    "Problem",
    "TestTransform",
    "TrainTransform",
    "ValidationReport",
    "VideoClipDataset",
    "VideoError",
    "VideoFailure",
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
]
