"""The model registry: one ``create(name, ...)`` entry point for every architecture."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import tf_keras as keras

from bnn_keras._env import PLUGINS_ENV
from bnn_keras.errors import BnnError, first_line

Builder = Callable[..., keras.Model]


@dataclass(frozen=True)
class ModelEntry:
    """A registered architecture and what it supports."""

    name: str
    builder: Builder
    variants: tuple[str, ...]
    family: str
    paper: str

    @property
    def default_variant(self) -> str:
        return self.variants[0]


_REGISTRY: dict[str, ModelEntry] = {}


def register(name: str, *, variants: Sequence[str], family: str, paper: str = ""):
    """Decorator registering ``builder(variant, num_classes, input_shape, **kw)`` as ``name``.

    The first variant listed is the default.
    """

    def wrap(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = ModelEntry(name, builder, tuple(variants), family, paper)
        return builder

    return wrap


def load_plugins(modules: str | None = None) -> list[str]:
    """Import the modules that register your own models, so the CLI knows them.

    ``modules`` is a comma-separated list of importable module names, by default the
    ``BNN_KERAS_MODELS`` environment variable. Each module registers its builders with
    :func:`register` when imported.

    Example:
        ```bash
        BNN_KERAS_MODELS=my_nets bnn-keras train --model my_reactnet_10
        ```
    """
    modules = os.environ.get(PLUGINS_ENV, "") if modules is None else modules
    loaded = []
    for module in (m.strip() for m in modules.split(",")):
        if not module:
            continue
        try:
            importlib.import_module(module)
        except Exception as err:  # noqa: BLE001  (any failure of the user's module)
            raise BnnError(f"cannot import model module {module!r} from ${PLUGINS_ENV}: "
                           f"{type(err).__name__}: {first_line(err)}") from None
        except SystemExit as err:  # it would end the command without a word
            raise BnnError(f"model module {module!r} from ${PLUGINS_ENV} called "
                           f"sys.exit({err.code!r}) while being imported") from None
        loaded.append(module)
    return loaded


def names() -> list[str]:
    """Names of every registered model, in registration order."""
    return list(_REGISTRY)


def get(name: str) -> ModelEntry:
    """The registry entry for ``name``; :class:`BnnError` naming the choices if unknown."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise BnnError(
            f"unknown model {name!r}; registered models: {', '.join(names())}"
        ) from None


def _check_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(input_shape)
    if len(shape) != 3 or not all(isinstance(d, int) and d > 0 for d in shape):
        raise BnnError(f"input_shape must be (height, width, channels) of positive ints, "
                       f"got {input_shape!r}")
    if min(shape[:2]) < 8:
        raise BnnError(f"input_shape {shape} is too small: height and width must be >= 8")
    return shape  # type: ignore[return-value]


def create(
    name: str,
    variant: str | None = None,
    num_classes: int = 1000,
    input_shape: Sequence[int] = (224, 224, 3),
    **kwargs,
) -> keras.Model:
    """Build a registered model (untrained).

    Args:
        name: a name from :func:`names`, e.g. ``"reactnet_18"``.
        variant: e.g. ``"bn"``, ``"bf"`` (BN-free) or ``"none"``; the entry's default if
            ``None``.
        num_classes: size of the classifier output (logits).
        input_shape: ``(height, width, channels)``.
        **kwargs: architecture options of the family (e.g. ``stem="small"``).

    Example:
        ```python
        model = bnn_keras.models.create("reactnet_18", variant="bf", num_classes=10,
                                        input_shape=(32, 32, 3))
        ```
    """
    entry = get(name)
    variant = variant or entry.default_variant
    if variant not in entry.variants:
        raise BnnError(
            f"model {name!r} has no variant {variant!r}; choose from {', '.join(entry.variants)}"
        )
    if not isinstance(num_classes, int) or num_classes < 2:
        raise BnnError(f"num_classes must be an int >= 2, got {num_classes!r}")
    shape = _check_shape(input_shape)
    try:
        return entry.builder(variant=variant, num_classes=num_classes, input_shape=shape,
                             **kwargs)
    except (TypeError, ValueError, OverflowError) as err:
        if not kwargs and not isinstance(err, TypeError):
            raise  # no option given: not the user's input
        raise BnnError(f"bad option for model {name!r}: {first_line(err)}") from None
