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
from bnn_keras.option_checks import check_field_types

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
        check_field_types(self)


@dataclass(frozen=True)
class ModelEntry:
    """A registered architecture and what it supports: ``builder(variant, num_classes,
    input_shape, options)`` with ``options`` an instance of its family's
    :class:`ModelOptions` subclass ``options``."""

    name: str
    builder: Builder
    variants: tuple[str, ...]
    family: str
    paper: str
    options: type[ModelOptions]

    @property
    def default_variant(self) -> str:
        return self.variants[0]


_REGISTRY: dict[str, ModelEntry] = {}


def register(name: str, *, variants: Sequence[str], family: str, paper: str = "",
             options: type[ModelOptions] | None = None):
    """Decorator registering ``builder(variant, num_classes, input_shape, options)`` as
    ``name``, ``options`` an instance of ``options`` (its family's :class:`ModelOptions`).

    Without ``options``, ``builder(variant, num_classes, input_shape, **kw)`` names its
    keyword options (each with a default) in its signature; they become its options
    object (:func:`options_from_signature`), so every entry's options are checked by
    name and type before the builder runs. The first variant listed is the default.
    """

    def wrap(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        entry_builder, entry_options = builder, options
        if entry_options is None:
            entry_options = options_from_signature(name, builder)
            entry_builder = _keyword_builder(builder)
        _REGISTRY[name] = ModelEntry(name, entry_builder, tuple(variants), family, paper,
                                     entry_options)
        return builder

    return wrap


_BUILDER_ARGUMENTS = ("variant", "num_classes", "input_shape")


def options_from_signature(name: str, builder: Builder) -> type[ModelOptions]:
    """A :class:`ModelOptions` subclass whose fields are ``builder``'s keyword options
    (its parameters after ``variant, num_classes, input_shape``) with their defaults.

    Raises:
        ValueError: the builder takes ``**kwargs`` or an option without a default (its
            options could not be checked before it runs): give ``register`` an
            ``options`` class instead.
    """
    fields = []
    for param in inspect.signature(builder).parameters.values():
        if param.name in _BUILDER_ARGUMENTS:
            continue
        if param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL) or \
                param.default is param.empty:
            raise ValueError(f"model {name!r}: builder parameter {param} needs a default "
                             "(or pass register(..., options=...)): options are checked "
                             "before the builder runs")
        fields.append((param.name, object, dataclasses.field(default=param.default)))
    return dataclasses.make_dataclass(f"{name}_options", fields, bases=(ModelOptions,),
                                      frozen=True)


def _keyword_builder(builder: Builder) -> Builder:
    """``builder`` (taking keyword options) called with an options object's fields."""

    def build(variant: str, num_classes: int, input_shape, options: ModelOptions):
        values = {f.name: getattr(options, f.name) for f in dataclasses.fields(options)}
        return builder(variant=variant, num_classes=num_classes, input_shape=input_shape,
                       **values)

    return build


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


def check_variant(name: str, variant: str | None) -> str:
    """``variant`` of model ``name`` (its default for ``None``); a one-line
    :class:`BnnError` naming the model's variants (or the registered models) if there
    is no such model or variant. Nothing is built."""
    return _variant(get(name), variant)


def _options(entry: ModelEntry, variant: str, options: Mapping) -> ModelOptions:
    """``entry``'s options object from keyword ``options``, checked for ``variant``."""
    known = [f.name for f in dataclasses.fields(entry.options)]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise BnnError(f"bad option for model {entry.name!r}: unknown {', '.join(unknown)}; "
                       f"its options: {', '.join(known)}")
    made = entry.options(**options)
    try:
        made.check(variant)
    except BnnError as err:
        raise BnnError(f"bad option for model {entry.name!r}: {err}") from None
    return made


def check_options(name: str, variant: str | None, options: Mapping) -> None:
    """Raise :class:`BnnError` unless ``create(name, variant, ..., **options)`` takes these
    options, without building the network: the entry's :class:`ModelOptions` checks
    names and values."""
    entry = get(name)
    _options(entry, _variant(entry, variant), options)


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
    # checked before the builder runs; the builder's own errors are its own
    return entry.builder(variant=variant, num_classes=num_classes, input_shape=shape,
                         options=_options(entry, variant, kwargs))
