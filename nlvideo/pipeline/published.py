"""A Predictor from published weights (pytorchvideo zoo, PySlowFast ``.pyth``, Caffe2 ``.pkl``,
...): for the tools that take any model we can load (attention maps, export).

The weights file gives the weights, their Non-local semantics (applied by ``build_network``,
through the one strict loader) and the class count: the rows of its classifier. The config
(defaults, or a YAML file, plus dotlist overrides) gives ``model.name`` and the test-time data
settings. Class names come from a class file, else they are ``class_<i>``. A file without a
classifier needs a class count (the class file's, or ``model.num_classes``) and then gets a
new, randomly initialised classifier, which the returned ``PublishedModel`` says.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlvideo.config import Config, load_config
from nlvideo.data.classes import load_classes
from nlvideo.engine.distributed import resolve_device
from nlvideo.engine.predictor import Predictor
from nlvideo.models.pretrained import Pretrained, PretrainedMismatchError, open_pretrained
from nlvideo.pipeline.data import build_test_transform, clip_options
from nlvideo.pipeline.jobs import build_network, build_test_head


@dataclass(frozen=True)
class PublishedModel:
    """Where a ``build_published_predictor`` network came from, for reports and metadata."""

    path: str  # the weights file
    format: str  # its format (a key of nlvideo.models.pretrained.READERS)
    model_name: str
    class_names: str  # where the class names come from
    classifier: str  # "from the file", or a new one's description

    def to_json(self) -> dict[str, Any]:
        """The fields, as the JSON of a report (``pretrained`` = the file)."""
        return {
            "pretrained": self.path,
            "format": self.format,
            "model_name": self.model_name,
            "class_names": self.class_names,
            "classifier": self.classifier,
        }


def _class_count(
    pretrained: Pretrained, names: list[str] | None, class_file: str, cfg_count: int
) -> int:
    """The file's class count; a class count given by the user must agree with it.

    Raises:
        ValueError: a given count differs from the file's, or the file has no classifier and
            no count was given.
    """
    where = f"{pretrained.source.path} ({pretrained.format})"
    given = [(f"{class_file}: {len(names)} class names", len(names))] if names is not None else []
    if cfg_count:
        given.append((f"model.num_classes={cfg_count}", cfg_count))
    found = pretrained.num_classes
    for what, count in given:
        if found is not None and count != found:
            raise ValueError(f"{what}, but the classifier of {where} has {found} classes")
    if found is not None:
        return found
    if not given:
        raise ValueError(
            f"{where} holds no classifier, so its class count is unknown: give a class file "
            "or model.num_classes=N for a new, randomly initialised one"
        )
    if len({count for _, count in given}) > 1:
        raise ValueError(f"{given[0][0]}, but {given[1][0]}")
    return given[0][1]


def published_config(
    path: str | Path, *, config: str | Path | Config | None = None, overrides: Sequence[str] = ()
) -> Config:
    """The config for published weights: ``config`` (None: the defaults) <- ``overrides``, with
    ``model.pretrained`` set to ``path``."""
    cfg = load_config(config, overrides)
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, pretrained=str(path)))


def build_published_predictor(
    path: str | Path,
    *,
    config: str | Path | Config | None = None,
    overrides: Sequence[str] = (),
    class_file: str = "",
    device: str = "auto",
) -> tuple[Predictor, PublishedModel]:
    """A Predictor whose network is ``model.name`` loaded strictly from the weights ``path``.

    Args:
        path: Weights file of any format of ``nlvideo.models.pretrained.READERS``.
        config: YAML recipe (or a Config) for ``model.name`` and the test-time data settings;
            None: the defaults.
        overrides: Dotlist overrides, e.g. ``model.name=i3d_nl5_r50 data.num_clips=1``.
        class_file: Class names (else ``data.class_index``, else ``class_<i>``).
        device: "auto" (GPU if available), "cpu", "cuda" or "cuda:N".

    Raises:
        FileNotFoundError, ValueError: one line naming the file or key: an unreadable file, a
            model that does not fit it (the loader's mismatch error), class counts that
            disagree, or a file without a classifier and no class count.
    """
    cfg = published_config(path, config=config, overrides=overrides)
    m = cfg.model
    pretrained = open_pretrained(m.pretrained, m.pretrained_format)
    class_file = class_file or cfg.data.class_index
    names = load_classes(class_file) if class_file else None
    count = _class_count(pretrained, names, class_file, m.num_classes)
    new_head = pretrained.num_classes is None
    if new_head:
        pretrained = dataclasses.replace(pretrained, new_classifier=True)
    try:
        model, _ = build_network(cfg, count, pretrained)
    except PretrainedMismatchError as e:  # the loader's error, naming the network too
        where = f"model.name={m.name}: model.pretrained: {m.pretrained} ({pretrained.format})"
        raise PretrainedMismatchError(where, e.missing, e.unexpected, e.mismatched) from e
    dev = resolve_device(device)
    predictor = Predictor(
        build_test_head(cfg, model.to(dev).eval()),
        names if names is not None else [f"class_{i}" for i in range(count)],
        transform=build_test_transform(cfg),
        device=dev,
        amp=cfg.train.amp,
        **clip_options(cfg),
    )
    info = PublishedModel(
        path=str(path),
        format=pretrained.format,
        model_name=m.name,
        class_names=class_file if names is not None else "class_<i>: no class file given",
        classifier=(
            "new, randomly initialised: the file has none (its predictions mean nothing)"
            if new_head
            else "from the file"
        ),
    )
    return predictor, info
