"""pytorchvideo model-zoo checkpoints (``C2D_8x8_R50.pyth``, ``I3D_8x8_R50.pyth``).

Our module names are pytorchvideo's (``blocks.0`` stem ... ``blocks.6`` head), so the keys
load unchanged into the matching network (``c2d_r50`` / ``i3d_r50``). A bare state dict of an
nlvideo network reads the same way.
"""

from __future__ import annotations

from torch import nn

from nlvideo.models.pretrained.source import Source
from nlvideo.models.pretrained.weights import HEAD, Reader, Weights, keys_of, rows_of, tensor_dict


def _matches(source: Source) -> bool:
    keys = keys_of(source)
    return bool(keys) and all(k.startswith(("blocks.", "module.blocks.")) for k in keys)


def _convert(source: Source, model: nn.Module) -> Weights:
    return Weights(tensors=tensor_dict(source))


def _num_classes(source: Source) -> int | None:
    return rows_of(tensor_dict(source), f"{HEAD}.weight")


READER = Reader("pytorchvideo", _matches, _convert, num_classes=_num_classes)
