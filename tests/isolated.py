"""Tests marked ``isolated`` run in a fresh interpreter (see tests/conftest.py).

A test worker that builds, converts and interprets full networks test after test keeps
most of what TensorFlow, the LCE converter and the allocator took: its memory only grows,
and two such workers outgrew CI's machine. A spawned child runs the marked tests instead
and is replaced once it holds more than :data:`RECYCLE_MB`, so what it took goes back to
the OS. The child seeds as the conftest does and gives the test a ``capsys`` of its own;
every other argument the test takes must pickle.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import io
import multiprocessing
from collections import namedtuple
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import bnn_keras  # noqa: F401  (sets TF_USE_LEGACY_KERAS=1 before TensorFlow loads)

#: A child holding more than this after a test is replaced before the next one.
RECYCLE_MB = 2500

CaptureResult = namedtuple("CaptureResult", "out err")


class Capture:
    """``capsys`` in the child: what the test printed since it last read."""

    def __init__(self) -> None:
        self._out, self._err = io.StringIO(), io.StringIO()

    def readouterr(self) -> CaptureResult:
        result = CaptureResult(self._out.getvalue(), self._err.getvalue())
        for stream in (self._out, self._err):
            stream.seek(0)
            stream.truncate()
        return result

    def redirect(self) -> contextlib.ExitStack:
        stack = contextlib.ExitStack()
        stack.enter_context(contextlib.redirect_stdout(self._out))
        stack.enter_context(contextlib.redirect_stderr(self._err))
        return stack


def resident_mb() -> int:
    """This process's resident memory, after returning freed heap pages to the OS."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # glibc keeps freed pages otherwise
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    return 0


def _run(module: str, qualname: str, kwargs: dict) -> int:
    import tf_keras as keras

    target = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    if "capsys" in kwargs:
        kwargs = {**kwargs, "capsys": Capture()}
    keras.utils.set_random_seed(0)
    try:
        with kwargs["capsys"].redirect() if "capsys" in kwargs else contextlib.nullcontext():
            target(**kwargs)
    finally:
        keras.backend.clear_session()
    return resident_mb()


class Child:
    """One spawned interpreter at a time, replaced when it grows past :data:`RECYCLE_MB`."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None

    def run(self, function, kwargs: dict) -> None:
        if self._pool is None:
            spawn = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(1, mp_context=spawn)
        # capsys stays here: the child makes its own
        kwargs = {name: None if name == "capsys" else value for name, value in kwargs.items()}
        try:
            held = self._pool.submit(_run, function.__module__, function.__qualname__,
                                     kwargs).result()
        except BrokenProcessPool:
            self.close()
            raise
        if held > RECYCLE_MB:
            self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
