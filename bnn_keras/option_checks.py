"""Checks every options object shares (a model family's, the data pipelines', a run's):
names against the known ones, values against their field's type and an integer's range.
Each failure is a one-line :class:`~bnn_keras.errors.BnnError`."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable

from bnn_keras.errors import BnnError


def shorten(value, limit: int = 100) -> str:
    """``value`` for a message, cut to ``limit`` characters (a 10**100000 stays short)."""
    huge = isinstance(value, int) and abs(value) >= 10**limit  # repr fails past 4300 digits
    text = "a huge integer" if huge else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def check_names(given: Iterable[str], known: Iterable[str], what: str) -> None:
    """A one-line :class:`BnnError` naming the first of ``given`` that is not in
    ``known`` (with the closest known name, if one is close) and every known name:
    ``unknown data option 'augmnt' (did you mean augment?); data options: ...``."""
    known = list(known)
    for name in given:
        if name not in known:
            close = difflib.get_close_matches(str(name), known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise BnnError(f"unknown {what} {shorten(name)}{hint}; {what}s: "
                           f"{', '.join(known)}")


def check_range(name: str, value, low: int, high: int) -> None:
    """A one-line :class:`BnnError` when the number ``value`` is outside ``[low, high]``."""
    if isinstance(value, (int, float)) and not low <= value <= high:
        raise BnnError(f"{name} must be from {low} to {high}, got {shorten(value)}")


def check_field_types(options) -> None:
    """A one-line :class:`BnnError` for the first field of the dataclass ``options``
    whose value has another type than its default: an int is fine for a float, a list
    for a tuple; a bool only for a bool. Fields defaulting to ``None`` take anything."""
    for f in dataclasses.fields(options):
        value, default = getattr(options, f.name), f.default
        if default is None or value == default:
            continue
        if isinstance(default, bool) or not isinstance(default, (int, float, tuple)):
            ok = isinstance(value, type(default))
        elif isinstance(default, tuple):
            ok = isinstance(value, (tuple, list))
        else:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok:
            raise BnnError(f"{f.name} must be a {type(default).__name__}, got {shorten(value)}")
