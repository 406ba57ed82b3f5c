"""The one strict loader: a file's ``Weights`` into a network, or an error naming the tensors.

Strict except the classifier, as timm's ``_builder.py``: when only the class count differs,
the classification layer (the model's last ``nn.Linear``) keeps its fresh initialisation. Any
other missing, unexpected or mis-shaped tensor is an error listing them; ``strict=False``
loads what fits and warns with the counts. BatchNorm's ``num_batches_tracked`` counters are
not weights and may be absent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from nlvideo.models.pretrained.architecture import check_architecture
from nlvideo.models.pretrained.caffe2_pkl import READER as CAFFE2
from nlvideo.models.pretrained.imagenet2d import READER as IMAGENET2D
from nlvideo.models.pretrained.nlvideo_ckpt import READER as NLVIDEO
from nlvideo.models.pretrained.pytorchvideo_zoo import READER as PYTORCHVIDEO
from nlvideo.models.pretrained.slowfast_c2 import READER as SLOWFAST_C2
from nlvideo.models.pretrained.slowfast_pyth import READER as SLOWFAST
from nlvideo.models.pretrained.source import Source, read_source
from nlvideo.models.pretrained.weights import Reader, Weights, keys_of

logger = logging.getLogger(__name__)

# Detection tries them in this order (slowfast_c2 only on request: its files read as caffe2);
# adding a format = one reader module + one entry here.
READERS: dict[str, Reader] = {
    r.name: r for r in (NLVIDEO, CAFFE2, SLOWFAST_C2, IMAGENET2D, SLOWFAST, PYTORCHVIDEO)
}
_SHOW = 5  # names listed per kind in messages


def _names(items: list[str]) -> str:
    more = f", ... ({len(items) - _SHOW} more)" if len(items) > _SHOW else ""
    return ", ".join(items[:_SHOW]) + more


class PretrainedMismatchError(ValueError):
    """A weights file does not fit the model: one line per kind, first names and the count."""

    def __init__(
        self, where: str, missing: list[str], unexpected: list[str], mismatched: list[str]
    ) -> None:
        self.missing, self.unexpected, self.mismatched = missing, unexpected, mismatched
        lines = [f"{where} does not fit the model (model.pretrained_strict=false loads the rest)"]
        for title, items in (
            ("missing from the file", missing),
            ("unexpected in the file", unexpected),
            ("shape differs (file vs model)", mismatched),
        ):
            if items:
                lines.append(f"  {len(items)} {title}: {_names(items)}")
        super().__init__("\n".join(lines))


@dataclass
class LoadReport:
    """What ``load_pretrained`` did, by model tensor name (file names in ``ignored``)."""

    source: str
    format: str
    loaded: list[str] = field(default_factory=list)
    reinitialised: list[str] = field(default_factory=list)  # kept their fresh initialisation
    ignored: list[str] = field(default_factory=list)  # file entries not loaded
    notes: dict[str, str] = field(default_factory=dict)  # loaded tensors made, not copied

    def summary(self) -> str:
        """One line: counts, with the names of re-initialised and ignored tensors."""
        parts = [f"loaded {len(self.loaded)} tensors from {self.source} ({self.format})"]
        if self.notes:
            parts.append(
                f"{len(self.notes)} converted ({_names(sorted(set(self.notes.values())))})"
            )
        if self.reinitialised:
            parts.append(f"re-initialised {len(self.reinitialised)}: {_names(self.reinitialised)}")
        if self.ignored:
            parts.append(f"ignored {len(self.ignored)}: {_names(self.ignored)}")
        return "; ".join(parts)


def _classifier(model: nn.Module) -> str | None:
    """Name of the classification layer: the model's last ``nn.Linear``."""
    names = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    return names[-1] if names else None


def _shape(t: Any) -> list[int]:
    return list(t.shape)


def apply_weights(
    model: nn.Module, weights: Weights, *, where: str, fmt: str, strict: bool = True
) -> LoadReport:
    """Load ``weights`` into ``model``: all of them, or raise (``strict``), or what fits.

    Raises:
        PretrainedMismatchError: ``strict`` and a tensor is missing, unexpected or mis-shaped
            (the classifier excepted when only its class count differs).
    """
    own = model.state_dict()
    tensors = weights.tensors
    report = LoadReport(source=where, format=fmt, ignored=list(weights.ignored))

    def named(key: str) -> str:
        theirs = weights.origin.get(key) or (weights.file_name and weights.file_name(key))
        return f"{key} (file: {theirs})" if theirs and theirs != key else key

    head = _classifier(model)
    head_keys = {f"{head}.weight", f"{head}.bias"} if head else set()
    reset = [
        k
        for k in sorted(head_keys & tensors.keys() & own.keys())
        if tensors[k].dim() == own[k].dim()
        and tensors[k].shape[1:] == own[k].shape[1:]
        and tensors[k].shape[0] != own[k].shape[0]
    ]
    if reset:
        logger.info(
            "%s: %d classes in the file, %d in the model: the classifier %s is re-initialised",
            where, tensors[reset[0]].shape[0], own[reset[0]].shape[0], head,
        )  # fmt: skip
    missing = sorted(
        k
        for k in own.keys() - tensors.keys() - weights.fresh
        if not k.endswith("num_batches_tracked") and k not in reset
    )
    unexpected = sorted(tensors.keys() - own.keys())
    mismatched = sorted(
        k
        for k in own.keys() & tensors.keys()
        if tensors[k].shape != own[k].shape and k not in reset
    )
    if missing or unexpected or mismatched:
        described = [
            [named(k) for k in missing],
            [named(k) for k in unexpected],
            [f"{named(k)} {_shape(tensors[k])} vs {_shape(own[k])}" for k in mismatched],
        ]
        if strict:
            raise PretrainedMismatchError(where, *described)
        logger.warning(
            "%s: PARTIAL load (model.pretrained_strict=false): %d missing, %d unexpected, "
            "%d mis-shaped tensors not loaded (see below)",
            where, len(missing), len(unexpected), len(mismatched),
        )  # fmt: skip
    skip = set(reset) | set(unexpected) | set(mismatched)
    state = {k: v for k, v in tensors.items() if k not in skip}
    model.load_state_dict(state, strict=False)
    report.loaded = sorted(state)
    kept = set(reset) | set(missing) | set(mismatched) | (weights.fresh & own.keys())
    report.reinitialised = sorted(kept)
    report.ignored += [weights.origin.get(k, k) for k in unexpected + mismatched]
    report.notes = {k: v for k, v in weights.notes.items() if k in state}
    return report


@dataclass
class Pretrained:
    """A weights file read once, its format known: what the model needs, then the load.

    ``new_classifier``: the file has no classifier and the model's keeps its initialisation
    (asked for explicitly, e.g. by giving a class count for a headless file).
    """

    source: Source
    reader: Reader
    new_classifier: bool = False

    @property
    def format(self) -> str:
        return self.reader.name

    @property
    def model_options(self) -> dict[str, Any]:
        """``build_model`` options the file's weights need (its Non-local semantics)."""
        return self.reader.model_options(self.source)

    @property
    def num_classes(self) -> int | None:
        """Class count of the file's classifier; None when the file holds no classifier."""
        return self.reader.num_classes(self.source)

    def check_model(self, model: nn.Module) -> None:
        """Raise, naming the options, when the model computes otherwise than the file's network
        (Non-local semantics, stem pool padding, Non-local temporal groups).

        Raises:
            PretrainedArchitectureError: one line; the model differs from, or cannot be, the
                network ``model_options`` describe.
        """
        where = f"model.pretrained: {self.source.path} is a {self.format} checkpoint whose layers"
        check_architecture(model, self.model_options, where)

    def load_into(self, model: nn.Module, *, strict: bool = True) -> LoadReport:
        """Check the model's Non-local semantics, load, log the report and return it."""
        self.check_model(model)
        weights = self.reader.convert(self.source, model)
        head = _classifier(model)
        if self.new_classifier and head:
            weights.fresh |= {k for k in model.state_dict() if k.startswith(f"{head}.")}
        where = f"model.pretrained: {self.source.path} ({self.format})"
        report = apply_weights(model, weights, where=where, fmt=self.format, strict=strict)
        report.source = self.source.path
        logger.info("%s", report.summary())
        logger.debug("loaded: %s", report.loaded)
        return report


def detect_format(source: Source) -> str:
    """The format of a file read by ``read_source``.

    Raises:
        ValueError: naming the file and the formats, when none recognises it.
    """
    for reader in READERS.values():
        if reader.matches(source):
            return reader.name
    keys = keys_of(source) or (list(source.content)[:5] if isinstance(source.content, dict) else [])
    raise ValueError(
        f"model.pretrained: cannot tell the format of {source.path} (first keys {keys[:5]}); "
        f"set model.pretrained_format to one of {', '.join(READERS)}"
    )


def open_pretrained(path: str | Path, fmt: str = "auto") -> Pretrained:
    """Read a weights file once and find its format (``fmt="auto"``: from the content).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: unreadable or unsafe file, unknown format, or a file not of ``fmt``.
    """
    if fmt != "auto" and fmt not in READERS:
        raise ValueError(f"model.pretrained_format: unknown format {fmt!r}; one of {list(READERS)}")
    source = read_source(path)
    if fmt == "auto":
        fmt = detect_format(source)
    elif not READERS[fmt].matches(source):
        raise ValueError(f"model.pretrained: {path} is not a {fmt} file (model.pretrained_format)")
    return Pretrained(source, READERS[fmt])


def load_pretrained(
    model: nn.Module, path: str | Path, fmt: str = "auto", *, strict: bool = True
) -> LoadReport:
    """Initialise ``model`` from a weights file: the one way in for every format.

    Args:
        model: freshly built network (its Non-local options must match the file's).
        path: nlvideo checkpoint, pytorchvideo or PySlowFast ``.pyth``, Caffe2 ``.pkl``, or a
            torchvision 2-D ImageNet ResNet state dict (inflated to 3-D).
        fmt: "auto" (from the content) or one of ``READERS``.
        strict: error on any tensor that does not fit (the classifier excepted when only the
            class count differs); False loads what fits and warns.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: naming the file (and the tensors) when it cannot be read or does not fit.
    """
    return open_pretrained(path, fmt).load_into(model, strict=strict)
