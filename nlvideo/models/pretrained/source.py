"""Reading a weights file once: a torch file (``weights_only``) or a restricted pickle.

A torch file (zip, or the legacy format that starts with torch's magic number) is read with
``torch.load(weights_only=True)``. Any other pickle (Caffe2 ``.pkl`` files are Python-2
pickles of numpy arrays) goes through ``RestrictedUnpickler``, which admits only dicts, lists,
tuples, strings, numbers and numpy arrays / dtypes / scalars: a pickle that names any other
callable is refused before anything is called.
"""

from __future__ import annotations

import codecs
import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

_TORCH_MAGIC = 0x1950A86A20F9469CFC6C  # first pickle of a legacy (non-zip) torch.save file


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` for the one codec protocol-2 pickles of bytes use, no other."""
    if encoding.lower().replace("-", "").replace("_", "") not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError(f"refused _codecs.encode with codec {encoding!r}")
    return codecs.encode(text, "latin1")


def _numpy_globals() -> dict[tuple[str, str], Any]:
    """The numpy callables a pickled array needs, under numpy 1.x and 2.x module names."""
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray
    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray}
    allowed[("numpy", "dtype")] = np.dtype
    # Python 3 pickles bytes under protocol 2 as _codecs.encode(str, "latin1").
    allowed[("_codecs", "encode")] = _latin1_encode
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = multiarray._reconstruct
        allowed[(module, "scalar")] = multiarray.scalar
    return allowed


_ALLOWED = _numpy_globals() | {("collections", "OrderedDict"): dict}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles plain data and numpy arrays only; any other global raises, nothing runs."""

    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(
                f"refused {module}.{name}: only arrays, numbers and strings are read"
            )
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refused a persistent id: not a plain pickle of arrays")


def restricted_loads(data: bytes) -> Any:
    """Unpickle ``data`` (Python 2 or 3, ``latin1`` for Python-2 byte strings) safely.

    Raises:
        pickle.UnpicklingError: the pickle names a callable other than numpy's array builders,
            or holds object arrays.
    """
    obj = RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    _check_no_object_arrays(obj)
    return obj


def _check_no_object_arrays(obj: Any) -> None:
    if isinstance(obj, dict):
        for value in obj.values():
            _check_no_object_arrays(value)
    elif isinstance(obj, list | tuple):
        for value in obj:
            _check_no_object_arrays(value)
    elif isinstance(obj, np.ndarray) and obj.dtype.kind == "O":
        raise pickle.UnpicklingError("refused an object array: only numeric arrays are read")


@dataclass
class Source:
    """What a weights file holds, read once."""

    path: str
    kind: str  # "torch" (torch.load, weights_only) or "pickle" (restricted pickle)
    content: Any


def read_source(path: str | Path) -> Source:
    """Read ``path`` once, safely.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: naming the file, when it is corrupt or holds anything but plain data.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model.pretrained: {path} does not exist")
    data = path.read_bytes()
    if not data.startswith(b"PK\x03\x04"):
        try:
            content = restricted_loads(data)
        except Exception as e:  # pickle raises many types on garbage
            raise ValueError(
                f"model.pretrained: {path} is corrupt or not a plain pickle of arrays "
                f"(nothing was run): {e}"
            ) from e
        if content != _TORCH_MAGIC:
            return Source(str(path), "pickle", content)
    try:
        content = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # zip, pickle and weights-only errors come in many types
        raise ValueError(
            f"model.pretrained: {path} is corrupt or not a safe torch file: {e}"
        ) from e
    return Source(str(path), "torch", content)
