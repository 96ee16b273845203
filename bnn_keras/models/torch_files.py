"""Reading PyTorch checkpoints (``.pth`` / ``.pth.tar``, or an ``.npz`` of their arrays)
as state dicts of NumPy arrays, for :mod:`bnn_keras.models.torch_import`."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from bnn_keras.errors import BnnError, first_line

TORCH_EXTRA = "pip install 'bnn-keras[torch]' (a CPU build of torch is enough)"


def read_checkpoint(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The state dict of a ``.pth`` / ``.pth.tar`` checkpoint (or an ``.npz`` of arrays),
    as NumPy arrays, ``module.`` prefixes removed.

    ``.pth`` files are read with ``torch.load(weights_only=True)``: a checkpoint is a
    pickle, and only tensors and plain containers are unpickled, never code.
    """
    path = Path(path)
    if not path.is_file():
        raise BnnError(f"checkpoint not found: {path}")
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                return state_dict(dict(data))
        except (OSError, ValueError) as err:
            raise BnnError(f"cannot read {path}: {first_line(err, limit=300)}") from None
    try:
        import torch
    except ImportError:
        raise BnnError(f"reading {path.name} needs PyTorch: {TORCH_EXTRA}") from None
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for a bad file
        raise BnnError(_unreadable(path, err)) from None
    return state_dict(checkpoint)


def _unreadable(path: Path, err: Exception) -> str:
    """Why ``path`` was not read. torch's refusal of a pickle that names code goes on to
    advise ``weights_only=False``, which would run that code: it is replaced by what the
    file holds and what to do instead."""
    text = str(err)
    if "Weights only load failed" not in text:
        return f"cannot read checkpoint {path}: {first_line(err, limit=300)}"
    found = re.search(r"GLOBAL (\S+)", text)
    named = f" ({found.group(1)})" if found else ""
    return (f"refusing checkpoint {path}: it holds objects other than tensors{named}, which "
            "loading would run as code; bnn-keras reads tensors only (save the state dict "
            "alone with torch.save(model.state_dict(), ...), or its arrays as an .npz)")


def state_dict(checkpoint: Mapping) -> dict[str, np.ndarray]:
    """``checkpoint['state_dict']`` (or ``checkpoint`` itself) with NumPy values and no
    ``module.`` prefix (``DataParallel`` / ``DistributedDataParallel``)."""
    if not isinstance(checkpoint, Mapping):
        raise BnnError(f"a checkpoint must be a dict of tensors, got {type(checkpoint).__name__}")
    state = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state, Mapping):
        raise BnnError("the checkpoint's 'state_dict' is not a dict of tensors")
    out = {}
    for key, value in state.items():
        if not hasattr(value, "shape"):
            raise BnnError(f"checkpoint entry {key!r} is not a tensor "
                           f"({type(value).__name__}); is this a state dict?")
        array = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
        out[key[len("module."):] if key.startswith("module.") else key] = array
    return out
