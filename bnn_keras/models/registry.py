"""The model registry: one ``create(name, ...)`` entry point for every architecture."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import tf_keras as keras

from bnn_keras._env import PLUGINS_ENV
from bnn_keras.errors import BnnError, first_line

Builder = Callable[..., keras.Model]


@dataclass(frozen=True)
class ModelOptions:
    """Base of a family's options: a frozen dataclass whose fields are the keyword options
    of ``create`` (and ``--model-option KEY=VALUE``), defaults the official network.

    :meth:`check` refuses values of another type than the field's default (an int for a
    float is fine, a list for a tuple too); a family adds the checks of its values.
    """

    def check(self, variant: str) -> None:
        """Raise :class:`BnnError` unless these options make a network of ``variant``."""
        for f in dataclasses.fields(self):
            value, default = getattr(self, f.name), f.default
            if default is None or value == default:
                continue
            if isinstance(default, bool) or not isinstance(default, (int, float, tuple)):
                ok = isinstance(value, type(default))
            elif isinstance(default, tuple):
                ok = isinstance(value, (tuple, list))
            else:
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not ok:
                raise BnnError(f"{f.name} must be a {type(default).__name__}, got {value!r}")


@dataclass(frozen=True)
class ModelEntry:
    """A registered architecture and what it supports; ``options`` is its family's
    :class:`ModelOptions` subclass (``None``: the builder takes keyword options)."""

    name: str
    builder: Builder
    variants: tuple[str, ...]
    family: str
    paper: str
    options: type[ModelOptions] | None = None

    @property
    def default_variant(self) -> str:
        return self.variants[0]


_REGISTRY: dict[str, ModelEntry] = {}


def register(name: str, *, variants: Sequence[str], family: str, paper: str = "",
             options: type[ModelOptions] | None = None):
    """Decorator registering ``builder(variant, num_classes, input_shape, options)`` as
    ``name``, ``options`` an instance of ``options`` (its family's :class:`ModelOptions`);
    without ``options``, ``builder(variant, num_classes, input_shape, **kw)``.

    The first variant listed is the default.
    """

    def wrap(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = ModelEntry(name, builder, tuple(variants), family, paper, options)
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


def _variant(entry: ModelEntry, variant: str | None) -> str:
    variant = variant or entry.default_variant
    if variant not in entry.variants:
        raise BnnError(f"model {entry.name!r} has no variant {variant!r}; choose from "
                       f"{', '.join(entry.variants)}")
    return variant


def _options(entry: ModelEntry, variant: str, options: Mapping) -> ModelOptions:
    """``entry``'s options object from keyword ``options``, checked for ``variant``."""
    known = [f.name for f in dataclasses.fields(entry.options)]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise BnnError(f"bad option for model {entry.name!r}: unknown {', '.join(unknown)}; "
                       f"its options: {', '.join(known)}")
    made = entry.options(**options)
    made.check(variant)
    return made


def check_options(name: str, variant: str | None, options: Mapping) -> None:
    """Raise :class:`BnnError` unless ``create(name, variant, ..., **options)`` takes these
    options, without building the network: the family's :class:`ModelOptions` checks
    names and values; a builder registered without one, the names against its signature.
    """
    entry = get(name)
    variant = _variant(entry, variant)
    if entry.options is not None:
        _options(entry, variant, options)
        return
    try:
        inspect.signature(entry.builder).bind(variant, 10, (224, 224, 3), **options)
    except TypeError as err:
        raise BnnError(f"bad option for model {name!r}: {err}") from None


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
        **kwargs: architecture options of the family (e.g. ``stem="small"``): the fields
            of its :class:`ModelOptions`.

    Example:
        ```python
        model = bnn_keras.models.create("reactnet_18", variant="bf", num_classes=10,
                                        input_shape=(32, 32, 3))
        ```
    """
    entry = get(name)
    variant = _variant(entry, variant)
    if not isinstance(num_classes, int) or num_classes < 2:
        raise BnnError(f"num_classes must be an int >= 2, got {num_classes!r}")
    shape = _check_shape(input_shape)
    if entry.options is not None:
        return entry.builder(variant=variant, num_classes=num_classes, input_shape=shape,
                             options=_options(entry, variant, kwargs))
    try:  # a builder registered without options takes them as keywords
        return entry.builder(variant=variant, num_classes=num_classes, input_shape=shape,
                             **kwargs)
    except (TypeError, ValueError, OverflowError) as err:
        if not kwargs and not isinstance(err, TypeError):
            raise  # no option given: not the user's input
        raise BnnError(f"bad option for model {name!r}: {first_line(err)}") from None
