"""PySlowFast's ``Kinetics/c2`` zoo (``C2D_NOPOOL_8x8_R50.pkl``, ``I3D_8x8_R50.pkl``,
``I3D_NLN_8x8_R50.pkl``) in the network PySlowFast runs them in.

The files are Caffe2 pickles with the release's blob names (read as ``caffe2_pkl`` does), but
PySlowFast loads them (``TRAIN.CHECKPOINT_TYPE: caffe2``, ``utils/checkpoint.py``) into its own
layout, whose stem max-pool pads 1 (``models/stem_helper.py``: ``padding=[0, 1, 1]``) and whose
Non-local blocks never group frames; its published accuracies for them come from that network.
Their content cannot be told from the release's, so ``model.pretrained_format=auto`` reads them
as ``caffe2`` (the release's network, unpadded stem pool); ``slowfast_c2`` asks for PySlowFast's.
"""

from __future__ import annotations

from nlvideo.models.pretrained.caffe2_pkl import READER as CAFFE2
from nlvideo.models.pretrained.slowfast_pyth import NL_SOFTMAX
from nlvideo.models.pretrained.source import Source
from nlvideo.models.pretrained.weights import Reader


def _model_options(source: Source) -> dict:
    return {**NL_SOFTMAX, "stem_pool_pad": 1, "nl_group_frames": [0, 0, 0, 0]}


READER = Reader("slowfast_c2", CAFFE2.matches, CAFFE2.convert, _model_options)
