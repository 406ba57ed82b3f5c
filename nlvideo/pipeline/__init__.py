"""The one place where a ``Config`` becomes objects, for training, evaluation and inference.

Records (the built-in data set or the configured lists), datasets, loaders, transforms, the
network and the precision all come from here, so ``nlvideo-train``, ``nlvideo-eval`` and
``nlvideo-infer`` see a video through the same test pipeline. Modules below this package take
plain arguments; only this package and the ``build_*`` functions read config objects.
``data``: records, loaders and transforms; ``jobs``: the network, training, evaluation and
prediction; ``published``: a predictor from published weights (any format the loader reads).
"""

from __future__ import annotations

from nlvideo.pipeline.data import (
    build_test_batches,
    build_test_loader,
    build_test_transform,
    build_train_loader,
    build_train_transform,
    check_config,
    eval_records,
    run_data,
)
from nlvideo.pipeline.jobs import (
    build_network,
    build_predictor,
    build_training,
    checkpoint_config,
    evaluate_checkpoint,
    predictor_from_checkpoint,
    run_training,
)
from nlvideo.pipeline.published import PublishedModel, build_published_predictor

__all__ = [
    "PublishedModel",
    "build_network",
    "build_predictor",
    "build_published_predictor",
    "build_test_batches",
    "build_test_loader",
    "build_test_transform",
    "build_train_loader",
    "build_train_transform",
    "build_training",
    "check_config",
    "checkpoint_config",
    "eval_records",
    "evaluate_checkpoint",
    "predictor_from_checkpoint",
    "run_data",
    "run_training",
]
