"""The built-in data set: motion clips that only temporal order tells apart, written as mp4s.

``render`` draws the frames (numpy + PIL); ``generate`` encodes them with Kinetics-format
lists and caches the result. Nothing on the reading path imports this package.
"""

from __future__ import annotations

from nlvideo.builtin.generate import BuiltinDataset, generate_builtin_dataset
from nlvideo.builtin.render import CLASSES, REVERSED_CLASS, class_pairs

__all__ = ["CLASSES", "REVERSED_CLASS", "BuiltinDataset", "class_pairs", "generate_builtin_dataset"]
