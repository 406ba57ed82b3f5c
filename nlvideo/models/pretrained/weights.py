"""What every format reader returns (``Weights``) and what it is (``Reader``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from nlvideo.models.pretrained.source import Source

WRAPPERS = ("model_state", "state_dict", "model")  # containers a state dict may sit in
HEAD = "blocks.6.proj"  # our classifier (every network's), as every reader names it


@dataclass
class Weights:
    """A file's weights under the model's names, ready for the strict loader."""

    tensors: dict[str, Tensor]
    origin: dict[str, str] = field(default_factory=dict)  # our name -> the file's, if renamed
    ignored: list[str] = field(default_factory=list)  # file entries that are not weights
    fresh: set[str] = field(default_factory=set)  # model keys this format never holds
    notes: dict[str, str] = field(default_factory=dict)  # our name -> how it was made
    # Our name -> the file format's, to name tensors missing from the file in its own terms.
    file_name: Callable[[str], str] | None = None


@dataclass(frozen=True)
class Reader:
    """One weights format: how to recognise its files and turn them into ``Weights``.

    ``model_options`` are the ``build_model`` options the file's weights need to compute what
    they computed where they came from (e.g. PySlowFast's Non-local semantics).
    ``num_classes`` is the class count of the file's classifier (its rows), None when the file
    holds none (e.g. an ImageNet 2-D ResNet, whose fc is not ours).
    """

    name: str
    matches: Callable[[Source], bool]
    convert: Callable[[Source, nn.Module], Weights]
    model_options: Callable[[Source], dict[str, Any]] = lambda source: {}
    num_classes: Callable[[Source], int | None] = lambda source: None


def state_dict_of(source: Source) -> Mapping[str, Any] | None:
    """The state dict inside a torch file (unwrapping ``model_state`` & co.), else None."""
    content = source.content
    if source.kind != "torch" or not isinstance(content, Mapping):
        return None
    for key in WRAPPERS:
        if isinstance(content.get(key), Mapping):
            return content[key]
    return content


def tensor_dict(source: Source) -> dict[str, Tensor]:
    """The state dict of a torch file as {name: tensor}, without a DDP ``module.`` prefix.

    Raises:
        ValueError: naming the file, when it holds no dict of tensors.
    """
    state = state_dict_of(source)
    if state is None:
        raise ValueError(f"model.pretrained: {source.path} holds no state dict")
    bad = [k for k, v in state.items() if not isinstance(v, Tensor)]
    if bad:
        raise ValueError(
            f"model.pretrained: {source.path}: expected a state dict of tensors (or one under "
            f"{list(WRAPPERS)}), found non-tensor entries {bad[:5]}"
        )
    state = dict(state)
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def keys_of(source: Source) -> list[str]:
    """String keys of a torch file's state dict ([] for anything else)."""
    state = state_dict_of(source)
    return [k for k in state if isinstance(k, str)] if state is not None else []


def rows_of(tensors: Mapping[str, Any] | None, key: str) -> int | None:
    """Rows of the matrix (or 1x1x1 conv) ``tensors[key]``: a classifier's class count."""
    shape = getattr((tensors or {}).get(key), "shape", None)
    return int(shape[0]) if shape is not None and len(shape) >= 2 else None
