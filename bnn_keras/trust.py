"""What a ``.keras`` file may name before bnn_keras deserialises it.

A ``.keras`` archive's ``config.json`` names the classes and functions Keras builds the
model from, and Keras resolves those names by importing modules and looking them up:
a ``Lambda`` layer naming ``os.system`` with a constant input runs that command while
the file loads (Keras's safe mode refuses only pickled lambdas). Model files come from
strangers (a shared model, a teacher, a copied run folder), so every loading path reads
the config first and :func:`check_model_config` refuses, naming the layer:

- layers that call code the file chooses: ``Lambda``, the TensorFlow-op layers except
  for math and array ops, the instance- and class-method layers;
- any class or function that would resolve outside Keras, larq, larq-zoo, bnn_keras
  and the modules the user named in ``$BNN_KERAS_MODELS`` (their own layers), and any
  module the file names outside them (Keras would import it);
- functions anywhere but in Keras's activations, initializers, losses, metrics and the
  like, larq's quantizers, or the registered objects of the packages above.

:func:`trusting_code` lifts the check for a file the user made (``--trust-code``).
"""

from __future__ import annotations

import contextvars
import importlib
import os
from collections.abc import Iterator
from contextlib import contextmanager

from bnn_keras._env import PLUGINS_ENV
from bnn_keras.errors import BnnError

#: Packages whose classes and registered functions a model file may name.
TRUSTED_PACKAGES = ("keras", "tf_keras", "larq", "larq_zoo", "bnn_keras")

#: Layers that call code named in the file.
CODE_LAYERS = frozenset({"Lambda", "InstanceProperty", "InstanceMethod", "ClassMethod"})

#: Layers that call a TensorFlow function named in the file, and the functions they may
#: call: math and array ops, which compute on tensors and touch nothing else.
TF_OP_LAYERS = frozenset({"TFOpLambda", "SlicingOpLambda"})
TF_OP_PREFIXES = ("math.", "nn.", "__operators__.", "image.resize", "linalg.")
TF_OPS = frozenset({
    "abs", "add", "cast", "clip_by_value", "concat", "divide", "expand_dims", "gather",
    "identity", "matmul", "maximum", "minimum", "multiply", "ones_like", "pad", "reduce_max",
    "reduce_mean", "reduce_min", "reduce_sum", "reshape", "reverse", "shape", "sign",
    "split", "squeeze", "stack", "subtract", "tile", "transpose", "where", "zeros_like",
})

#: Modules whose functions a file may name by module (Keras's serialised built-ins).
FUNCTION_MODULES = frozenset(
    {f"{root}.{m}" for root in ("keras", "tf_keras") for m in (
        "activations", "constraints", "initializers", "losses", "metrics", "optimizers",
        "regularizers")}
    | {"larq.quantizers", "larq.activations", "larq.constraints", "larq.math"})

#: Entries of a config that are data, not objects to resolve.
DATA_CLASSES = frozenset({"__tensor__", "__numpy__", "__bytes__"})

_trusted: contextvars.ContextVar[bool] = contextvars.ContextVar("trusted", default=False)


@contextmanager
def trusting_code(enabled: bool = True) -> Iterator[None]:
    """Load model files in the block without :func:`check_model_config` (when
    ``enabled``): for a file whose author the user trusts, since it may run code."""
    token = _trusted.set(enabled)
    try:
        yield
    finally:
        _trusted.reset(token)


def code_trusted() -> bool:
    """Whether model files load unchecked here (inside :func:`trusting_code`)."""
    return _trusted.get()


def _plugin_modules() -> list[str]:
    return [m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(",") if m.strip()]


def trusted_module(name: object) -> bool:
    """Whether ``name`` is a module of :data:`TRUSTED_PACKAGES` or of the user's model
    modules (``$BNN_KERAS_MODELS``)."""
    if not isinstance(name, str) or not name:
        return False
    if name.partition(".")[0] in TRUSTED_PACKAGES:
        return True
    return any(name == m or name.startswith(f"{m}.") for m in _plugin_modules())


class _Refused(Exception):
    """Why an entry of the config may not be loaded (internal to the walk)."""


def _registered(name: object):
    from tf_keras.saving import get_registered_object

    return get_registered_object(name) if isinstance(name, str) else None


def _keras_symbol(name: str):
    from tensorflow.python.util.tf_export import get_symbol_from_name

    return get_symbol_from_name(name)


def _module_attribute(module: str, name: str):
    """``module.name`` for a trusted module (imported if need be, as Keras would)."""
    if module.startswith("keras"):
        module = "tf_" + module  # Keras's own renaming when it imports
    try:
        return vars(importlib.import_module(module)).get(name)
    except ImportError:
        return None


def _keras_module(module: str) -> bool:
    return module in ("keras", "tf_keras") or module.startswith(("keras.", "tf_keras."))


def _check_trusted(obj, what: str) -> None:
    owner = getattr(obj, "__module__", None)
    if not trusted_module(owner):
        raise _Refused(f"{what} resolves to {owner}.{getattr(obj, '__name__', obj)}, "
                       "outside keras, larq and bnn_keras")


def _check_class(entry: dict) -> None:
    """A class entry: the class Keras would build must be a trusted, code-free class."""
    name, registered = entry["class_name"], entry.get("registered_name")
    module = entry.get("module")
    if not isinstance(name, str) or not name.isidentifier():
        raise _Refused(f"class name {name!r} is not a plain name")
    if registered is not None and not isinstance(registered, str):
        raise _Refused(f"registered name {registered!r} is not a string")
    if module is not None and not trusted_module(module):
        raise _Refused(f"class {name} names module {module!r}, outside keras, larq and "
                       "bnn_keras")
    short = (registered or name).rpartition(">")[2]
    if {name, short} & CODE_LAYERS:
        raise _Refused(f"{name} layer runs Python code named in the file")
    if {name, short} & TF_OP_LAYERS:
        function = (entry.get("config") or {}).get("function")
        if not (isinstance(function, str) and
                (function in TF_OPS or function.startswith(TF_OP_PREFIXES))):
            raise _Refused(f"{name} layer calls tf.{function}, not a math or array op")
    # every object Keras may resolve the entry to (registry first, then the module)
    found = [_registered(registered), _registered(name)]
    if module is not None:
        if _keras_module(module):
            found.append(_keras_symbol(f"{module}.{name}"))
        found.append(_module_attribute(module, name))
    for obj in filter(None, found):
        if not isinstance(obj, type):
            raise _Refused(f"class {name} resolves to a {type(obj).__name__}, not a class")
        _check_trusted(obj, f"class {name}")


def _resolve_function(name: str, registered, module: str):
    """The function Keras resolves a function entry to, in Keras's order, or ``None``
    when Keras would look further than this function allows."""
    for candidate in (_registered(name), _registered(registered)):
        if candidate is not None:
            return candidate
    if module == "builtins":  # Keras's built-in namespaces, else Python's builtins
        for namespace in ("activations", "constraints", "initializers", "losses", "metrics",
                          "optimizers", "regularizers"):
            found = _keras_symbol(f"keras.{namespace}.{name}")
            if found is not None:
                return found
        return None
    if module in FUNCTION_MODULES:
        if _keras_module(module):
            found = _keras_symbol(f"{module}.{name}")
            if found is not None:
                return found
        return _module_attribute(module, name)
    return None


def _check_function(entry: dict) -> None:
    name, module = entry.get("config"), entry.get("module")
    if not isinstance(name, str) or not name.isidentifier():
        raise _Refused(f"function name {name!r} is not a plain name")
    function = _resolve_function(name, entry.get("registered_name"), module)
    if function is None:
        raise _Refused(f"function {module}.{name} is not a Keras, larq or bnn_keras function")
    if isinstance(function, type) or not callable(function):
        raise _Refused(f"function {module}.{name} is not a function")
    _check_trusted(function, f"function {name}")


def _check_entry(entry: dict) -> None:
    kind = entry["class_name"]
    if kind in DATA_CLASSES:
        return
    if kind == "__lambda__":
        raise _Refused("it holds a pickled Python lambda")
    if kind == "__typespec__":
        raise _Refused("it holds a type spec naming a class")
    if kind == "function":
        _check_function(entry)
    else:
        _check_class(entry)


def _walk(node, layer: str) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, layer)
        return
    if not isinstance(node, dict):
        return
    if "class_name" in node:
        inner = node.get("config")
        if isinstance(inner, dict) and isinstance(inner.get("name"), str):
            layer = inner["name"]
        try:
            _check_entry(node)
        except _Refused as why:
            raise BnnError(f"layer {layer!r}: {why}") from None
        if node["class_name"] in DATA_CLASSES:
            return
    for value in node.values():
        _walk(value, layer)


def check_model_config(config: object) -> None:
    """Raise a one-line :class:`BnnError` naming the layer if loading ``config`` (a
    ``.keras`` file's parsed ``config.json``) could run code (see the module's
    docstring); return quietly otherwise.

    Example:
        ```python
        check_model_config(json.loads(archive.read("config.json")))
        ```
    """
    if not isinstance(config, dict) or "class_name" not in config:
        raise BnnError("its config is not a Keras model")
    _walk(config, config.get("config", {}).get("name", "model")
          if isinstance(config.get("config"), dict) else "model")
