#!/usr/bin/env python3
"""Board-side benchmark runner: LCE's Python interpreter, ``lce_benchmark_model``'s output.

For a board with Python 3, numpy and the ``larq-compute-engine`` wheel but without the
``lce_benchmark_model`` binary. Standalone (no bnn_keras import): copy this one file to
the board (it is ``deploy/lce_bench_runner.py`` in the repository) and run::

    python3 lce_bench_runner.py --graph=model.tflite --num_threads=4 --num_runs=50

It accepts the flags of ``lce_benchmark_model`` that matter for a latency figure
(``--graph``, ``--num_threads``, ``--num_runs``, ``--warmup_runs``, ``--min_secs``,
``--warmup_min_secs``, ``--use_indirect_bgemm``, ``--use_reference_bconv``,
``--use_xnnpack``) and prints the lines ``bnn-keras bench`` parses, in the same
format: ``count= first= curr= min= max= avg= std=`` for the warm-up and the timed runs,
``Inference timings in us: ...`` and the peak memory (the process's maximum resident
set size). Differences from the binary: timings include the Python call overhead of
``Interpreter.predict`` (tens of microseconds), and input data is random normal.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _log(message: str) -> None:
    print(f"INFO: {message}", flush=True)


def _fmt(value: float) -> str:
    """Numbers as C++'s ostream prints a double (6 significant digits)."""
    return f"{value:.6g}"


def _stats_line(times_us: list[float]) -> str:
    n = len(times_us)
    avg = sum(times_us) / n
    std = (sum((t - avg) ** 2 for t in times_us) / n) ** 0.5
    ordered = sorted(times_us)
    median = ordered[n // 2]
    return (f"count={n} first={int(times_us[0])} curr={int(times_us[-1])} "
            f"min={int(ordered[0])} max={int(ordered[-1])} avg={_fmt(avg)} std={int(std)} "
            f"median={int(median)}")


def _peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _timed(predict, x, count: int, min_secs: float) -> list[float]:
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < count or (time.perf_counter() - start) < min_secs:
        t0 = time.perf_counter()
        predict(x)
        times.append((time.perf_counter() - t0) * 1e6)
        if not count and not min_secs:
            break
    return times


def load_interpreter_class():
    """LCE's ``Interpreter`` without importing TensorFlow.

    This runner builds the interpreter itself, not with bnn_keras's builder, because the
    board has neither bnn_keras nor TensorFlow installed.

    ``larq_compute_engine/__init__.py`` imports the converter and so TensorFlow, which a
    board usually lacks; the interpreter itself needs only numpy, tqdm and its extension
    module. The package is registered empty (its ``__init__`` not run) before the
    interpreter module is imported.
    """
    import importlib
    import importlib.util
    import types

    if "larq_compute_engine" not in sys.modules:
        spec = importlib.util.find_spec("larq_compute_engine")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("No module named 'larq_compute_engine'")
        package = types.ModuleType("larq_compute_engine")
        package.__path__ = list(spec.submodule_search_locations)
        package.__spec__ = spec
        sys.modules["larq_compute_engine"] = package
    module = importlib.import_module("larq_compute_engine.tflite.python.interpreter")
    return module.Interpreter


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The subset of ``lce_benchmark_model``'s flags this runner understands."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--graph", required=True, help="the .tflite model")
    p.add_argument("--num_threads", type=int, default=1)
    p.add_argument("--num_runs", type=int, default=50)
    p.add_argument("--warmup_runs", type=int, default=1)
    p.add_argument("--min_secs", type=float, default=1.0)
    p.add_argument("--warmup_min_secs", type=float, default=0.5)
    p.add_argument("--use_indirect_bgemm", type=_bool, default=False)
    p.add_argument("--use_reference_bconv", type=_bool, default=False)
    p.add_argument("--use_xnnpack", type=_bool, default=False)
    p.add_argument("--enable_op_profiling", type=_bool, default=False,
                   help="accepted; LCE's Python Interpreter has no profiler, so no op profile")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 on success, 1 (with an ``ERROR:`` line) on failure."""
    args = parse_args(argv)
    _log("STARTING!")
    _log(f"Num threads: [{args.num_threads}]")
    _log(f"Graph: [{args.graph}]")
    _log(f"Use indirect BGEMM: [{int(args.use_indirect_bgemm)}]")
    _log(f"Use xnnpack: [{int(args.use_xnnpack)}]")
    _log("Runner: [bnn-keras lce_bench_runner.py, LCE Python interpreter]")
    if args.enable_op_profiling:
        _log("Op profiling: not available (LCE's Python Interpreter has no profiler)")
    if args.num_threads < 1 or args.num_runs < 1 or args.warmup_runs < 0:
        print("ERROR: num_threads and num_runs must be >= 1, warmup_runs >= 0", flush=True)
        return 1
    try:
        with open(args.graph, "rb") as f:
            model = f.read()
    except OSError as err:
        print(f"ERROR: Could not open '{args.graph}': {err.strerror}", flush=True)
        return 1
    if len(model) < 8 or model[4:8] != b"TFL3":
        print(f"ERROR: '{args.graph}' is not a TFLite model.", flush=True)
        return 1
    try:
        import numpy as np

        Interpreter = load_interpreter_class()  # noqa: N806
    except ImportError as err:
        print(f"ERROR: this runner needs numpy and larq-compute-engine: {err}", flush=True)
        return 1
    _log(f"Loaded model {args.graph}")
    _log(f"The input model file size (MB): {_fmt(len(model) / 1e6)}")
    rss_start = _peak_rss_mb()
    t0 = time.perf_counter()
    try:
        interpreter = Interpreter(model, num_threads=args.num_threads,
                                  use_reference_bconv=args.use_reference_bconv,
                                  use_indirect_bgemm=args.use_indirect_bgemm,
                                  use_xnnpack=args.use_xnnpack)
    except Exception as err:  # noqa: BLE001
        print(f"ERROR: Failed to construct interpreter: {str(err).splitlines()[0][:200]}",
              flush=True)
        return 1
    init_us = (time.perf_counter() - t0) * 1e6
    init_mb = _peak_rss_mb() - rss_start
    _log(f"Initialized session in {_fmt(init_us / 1e3)}ms.")
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal(shape).astype(np.float32)
              if np.dtype(dtype) == np.float32 else np.zeros(shape, dtype)
              for shape, dtype in zip(interpreter.input_shapes, interpreter.input_types)]
    x = inputs[0] if len(inputs) == 1 else inputs
    predict = interpreter.predict

    warmup: list[float] = []
    if args.warmup_runs > 0:
        _log(f"Running benchmark for at least {args.warmup_runs} iterations and at least "
             f"{_fmt(args.warmup_min_secs)} seconds but terminate if exceeding 150 seconds.")
        warmup = _timed(predict, x, args.warmup_runs, args.warmup_min_secs)
        _log(_stats_line(warmup))
        print(flush=True)
    _log(f"Running benchmark for at least {args.num_runs} iterations and at least "
         f"{_fmt(args.min_secs)} seconds but terminate if exceeding 150 seconds.")
    runs = _timed(predict, x, args.num_runs, args.min_secs)
    _log(_stats_line(runs))
    print(flush=True)
    first = warmup[0] if warmup else runs[0]
    warmup_avg = sum(warmup) / len(warmup) if warmup else 0.0
    _log(f"Inference timings in us: Init: {int(init_us)}, First inference: {int(first)}, "
         f"Warmup (avg): {_fmt(warmup_avg)}, Inference (avg): {_fmt(sum(runs) / len(runs))}")
    _log("Note: as the benchmark tool itself affects memory footprint, the following is "
         "only APPROXIMATE to the actual memory footprint of the model at runtime. Take the "
         "information at your discretion.")
    peak = _peak_rss_mb()
    _log(f"Memory footprint delta from the start of the tool (MB): init={_fmt(init_mb)} "
         f"overall={_fmt(peak - rss_start)}")
    _log(f"Overall peak memory footprint (MB) via periodic monitoring: {_fmt(peak)}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
