"""Local latency of a flatbuffer with LCE's interpreter, and a crash-proof first run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bnn_keras.bench.remote import runner_script
from bnn_keras.errors import BnnError
from bnn_keras.export.flatbuffer import check_flatbuffer
from bnn_keras.export.interpreter import lce_interpreter


@dataclass
class Latency:
    """Per-inference wall time over ``runs`` timed runs after ``warmup`` untimed ones."""

    runs: int
    threads: int
    median_ms: float
    min_ms: float
    max_ms: float
    mean_ms: float
    std_ms: float = 0.0
    first_ms: float | None = None
    init_ms: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def benchmark_flatbuffer(flatbuffer: bytes, *, threads: int = 1, runs: int = 50,
                         warmup: int = 5, use_indirect_bgemm: bool = False,
                         use_xnnpack: bool = False, seed: int = 0) -> Latency:
    """Time single-image inference (LCE models have batch size 1) with LCE's interpreter.

    Note: off ARM the interpreter falls back to reference kernels, so x86 figures are
    for comparing models with each other, not for predicting board latency.
    ``use_xnnpack`` runs float ops with TFLite's XNNPACK delegate (the float baseline).
    The first of the ``warmup`` runs is timed as ``first_ms``; ``init_ms`` is the time
    to build the interpreter.
    """
    if threads < 1 or runs < 1 or warmup < 0:
        raise BnnError("threads and runs must be >= 1 and warmup >= 0")
    check_flatbuffer(flatbuffer)
    import larq_compute_engine.tflite.python.interpreter  # noqa: F401  (init_ms: not the import)

    start = time.perf_counter()
    interpreter = lce_interpreter(flatbuffer, num_threads=threads,
                                  use_indirect_bgemm=use_indirect_bgemm,
                                  use_xnnpack=use_xnnpack)
    shape = interpreter.input_shapes[0]
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    init_ms = (time.perf_counter() - start) * 1e3
    first_ms = None
    if warmup:
        start = time.perf_counter()
        interpreter.predict(x)
        first_ms = (time.perf_counter() - start) * 1e3
    for _ in range(max(0, warmup - 1)):
        interpreter.predict(x)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.predict(x)
        times.append((time.perf_counter() - start) * 1e3)
    t = np.asarray(times)
    return Latency(runs, threads, float(np.median(t)), float(t.min()), float(t.max()),
                   float(t.mean()), float(t.std()), first_ms, init_ms)


def best_median_ms(flatbuffers: dict[str, bytes], *, threads: int = 1, runs: int = 20,
                   repeats: int = 3) -> dict[str, float]:
    """Each flatbuffer's lowest median latency (ms) over ``repeats`` rounds of
    :func:`benchmark_flatbuffer`, the flatbuffers taking turns within a round: on a shared
    host the load drifts over minutes, and alternating lets the drift reach them alike."""
    best = {key: float("inf") for key in flatbuffers}
    for _ in range(repeats):
        for key, flatbuffer in flatbuffers.items():
            latency = benchmark_flatbuffer(flatbuffer, threads=threads, runs=runs)
            best[key] = min(best[key], latency.median_ms)
    return best


def _probe_argv(path: Path) -> list[str]:
    return [sys.executable, str(runner_script()), f"--graph={path}", "--num_threads=1",
            "--num_runs=1", "--warmup_runs=0", "--min_secs=0", "--warmup_min_secs=0"]


def probe_in_subprocess(path: str | os.PathLike, timeout: float = 600.0) -> None:
    """Build LCE's interpreter on the model file and run it once, in a child process.

    What :func:`~bnn_keras.export.flatbuffer.read_flatbuffer`'s checks cannot see (a
    damaged body whose indices are all in range) may still crash the interpreter; in a
    child (the board runner, which needs no TensorFlow) that crash becomes a one-line
    :class:`BnnError` instead of killing this process, and its temporary files with it.
    """
    try:
        proc = subprocess.run(_probe_argv(Path(path)), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, errors="replace",
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BnnError(f"LCE's interpreter did not finish one run of {path} in "
                       f"{timeout:.0f} s") from None
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        raise BnnError(f"LCE's interpreter crashed on {path} ({name}): the file is damaged "
                       "or not a model it can run")
    if proc.returncode:
        errors = [line[len("ERROR: "):] for line in proc.stdout.splitlines()
                  if line.startswith("ERROR: ")] or ["exit status " + str(proc.returncode)]
        raise BnnError(f"LCE's interpreter cannot run {path}: {errors[0][:200]}")
