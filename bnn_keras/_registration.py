"""Register bnn_keras's serialisable objects with Keras as soon as TensorFlow is loaded.

tf-keras finds a saved layer's class only in its registry of custom objects: a
``model.keras`` holding ``bnn_keras>RPReLU`` loads with plain
``tf.keras.models.load_model`` only once the module defining ``RPReLU`` was imported.
Importing those modules means importing TensorFlow, which ``import bnn_keras`` must not
do (``bnn-keras --help`` stays fast), so :func:`register_when_tensorflow_loads` waits:
it registers everything right after the first import of TensorFlow, tf-keras, larq or a
bnn_keras module has completed with TensorFlow loaded, whichever module the user (or
the CLI) imports first.

Registering waits for the outermost import to finish, not for TensorFlow's own module:
a module half-way through importing (``bnn_keras.data`` importing TensorFlow, tf-keras or
tensorflow-datasets importing TensorFlow) cannot be imported again from inside its own
import. So every top-level import and every import of a bnn_keras module is counted
until the registration is done, and it runs when the count returns to zero with
TensorFlow loaded.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
import threading

#: Every module defining an object bnn_keras writes into a file: larq's layers and
#: quantizers, ours, the optimizer and schedules a compiled model saves and the export's
#: folded layers, in an order that imports each after what it needs.
SERIALIZABLE_MODULES = (
    "larq",
    "bnn_keras.quantizers",
    "bnn_keras.layers",
    "bnn_keras.training.schedules",
    "bnn_keras.training.optim",
    "bnn_keras.export.shifts",
    "bnn_keras.export.deploy_layers",
    "bnn_keras.quantize.ranges",
    "bnn_keras.quantize.layers",
)

_state = threading.local()
_done = False


def register_all() -> None:
    """Import every module of :data:`SERIALIZABLE_MODULES` (their decorators register
    the objects); safe to call again."""
    global _done
    _done = True
    _remove_hook()
    for name in SERIALIZABLE_MODULES:
        importlib.import_module(name)


def _ready() -> bool:
    """TensorFlow is loaded and no counted import is half-way through."""
    return "tensorflow" in sys.modules and not getattr(_state, "depth", 0)


class _Hook(importlib.abc.MetaPathFinder):
    """Wraps the loaders of top-level modules and of bnn_keras's modules to count how
    deep their imports are nested; :func:`register_all` runs when the outermost one
    finishes."""

    def find_spec(self, name, path, target=None):
        if _done or getattr(_state, "finding", False):
            return None
        if "." in name and not name.startswith("bnn_keras."):
            return None
        _state.finding = True  # ask the other finders, not ourselves
        try:
            spec = importlib.util.find_spec(name)
        finally:
            _state.finding = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _CountingLoader(spec.loader)
        return spec


class _CountingLoader(importlib.abc.Loader):
    def __init__(self, loader) -> None:
        self._loader = loader

    def __getattr__(self, name):
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        _state.depth = getattr(_state, "depth", 0) + 1
        try:
            self._loader.exec_module(module)
        finally:
            _state.depth -= 1
        if not _done and _ready():
            register_all()


_HOOK = _Hook()


def _remove_hook() -> None:
    if _HOOK in sys.meta_path:
        sys.meta_path.remove(_HOOK)


def register_when_tensorflow_loads() -> None:
    """Register now if TensorFlow is loaded (and no counted import is under way), else
    as soon as it is (see the module's docstring)."""
    if _done:
        return
    if _ready():
        register_all()
    elif _HOOK not in sys.meta_path:
        sys.meta_path.insert(0, _HOOK)
