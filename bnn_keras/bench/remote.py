"""Benchmarks on a board over SSH: find the board's benchmark tool, copy each model, run
the tool for each thread count and parse its output.

The tool is ``lce_benchmark_model``, or, on a board without it, the board-side Python
runner (:mod:`bnn_keras.bench.board_runner`, copied there) on a Python with the LCE
wheel; both print the same format. Models are copied under fixed names
(``model-0.tflite``, ...) into the session's scratch directory.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bnn_keras.bench.op_profile import OpProfile, parse_op_profile
from bnn_keras.bench.parse import BenchmarkOutput, parse_benchmark_output
from bnn_keras.bench.spec import BenchSpec
from bnn_keras.bench.ssh import RemoteSession, SshTarget, last_line
from bnn_keras.errors import BnnError

DEFAULT_BINARY = "lce_benchmark_model"
RUNNER_SCRIPT = Path(__file__).resolve().with_name("board_runner.py")
RUNNERS = ("auto", "binary", "python")


def runner_script() -> Path:
    """The board-side Python runner (``deploy/lce_bench_runner.py`` links to it)."""
    if RUNNER_SCRIPT.is_file():
        return RUNNER_SCRIPT
    raise BnnError(f"the board-side runner {RUNNER_SCRIPT} is missing (broken install?)")


@dataclass(frozen=True)
class RemoteOptions:
    """Which benchmark tool runs on the board, and for how long.

    ``runner`` is ``auto`` (``binary`` if the board has it, else the Python runner),
    ``binary`` or ``python``; ``binary`` is the tool's name on PATH or its path
    [lce_benchmark_model]; ``python`` is the board's Python for the Python runner;
    ``timeout`` is in seconds, for each remote run.
    """

    binary: str | None = None
    python: str = "python3"
    runner: str = "auto"
    timeout: float = 600.0

    def __post_init__(self) -> None:
        if self.runner not in RUNNERS:
            raise BnnError(f"runner must be auto, binary or python, got {self.runner!r}")


@dataclass
class RemoteRun:
    """One model at one thread count on the board."""

    model: str
    threads: int
    runner: str
    output: BenchmarkOutput
    float_output: BenchmarkOutput | None = None
    #: the tool's op profile (``spec.op_profiling``; None if the runner gave none)
    op_profile: OpProfile | None = None


def find_runner(session: RemoteSession, options: RemoteOptions) -> tuple[str, list[str]]:
    """Which benchmark tool the board has: ``("binary", argv)`` or ``("python", argv)``
    (the Python runner is copied to the board first)."""
    tool, python = options.binary or DEFAULT_BINARY, options.python
    # `command -v` finds names on PATH; a path must be an executable file.
    probe_tool = (f"[ -f {shlex.quote(tool)} ] && [ -x {shlex.quote(tool)} ]" if "/" in tool
                  else f"command -v {shlex.quote(tool)} >/dev/null 2>&1")
    check = ("import importlib.util as u, sys; "
             "sys.exit(not all(map(u.find_spec, ('larq_compute_engine', 'numpy'))))")
    probe_py = f"{shlex.quote(python)} -c {shlex.quote(check)} >/dev/null 2>&1"
    script = (f"if {probe_tool}; then echo binary; fi; "
              f"if {probe_py}; then echo python; fi; echo done")
    proc = session.run(["sh", "-c", script], timeout=session.target.connect_timeout + 60,
                       what="probing the board")
    found = set(proc.stdout.split())
    where = session.target.destination
    if "done" not in found:
        raise BnnError(f"cannot probe {where}: {last_line(proc.stderr, 'no output')}")
    not_found = f"{tool!r} is not {'an executable file' if '/' in tool else 'on PATH'}"
    if options.runner in ("auto", "binary") and "binary" in found:
        return "binary", [tool]
    if options.runner == "binary":
        raise BnnError(f"{where} has no benchmark tool: {not_found} "
                       "(see deploy/README.md, or pass --binary PATH)")
    if "python" in found:
        return "python", [python, session.copy(runner_script(), "lce_bench_runner.py")]
    if options.runner == "python":
        raise BnnError(f"{where} has no Python with larq_compute_engine and numpy "
                       f"({python!r}; see deploy/README.md)")
    raise BnnError(f"{where} has no benchmark tool: {not_found} and {python!r} cannot import "
                   "larq_compute_engine (see deploy/README.md, or pass --binary PATH)")


def _measure(session: RemoteSession, argv: list[str], model: str,
             ) -> tuple[BenchmarkOutput, OpProfile | None]:
    """Run the benchmark tool (``argv``) on the board and parse what it printed: the
    timings and the op profile, if it printed one."""
    where = session.target.destination
    proc = session.run_killable(argv, what=f"benchmarking {model}")
    try:
        text = proc.stdout + "\n" + proc.stderr
        output = parse_benchmark_output(text)
        profile = parse_op_profile(text, model, output.num_threads)
    except BnnError as err:
        status = f" (exit status {proc.returncode})" if proc.returncode else ""
        raise BnnError(f"{model} on {where}{status}: {err}") from None
    if proc.returncode != 0:
        raise BnnError(f"{model} on {where}: the benchmark tool exited with status "
                       f"{proc.returncode}")
    return output, profile


def benchmark_over_ssh(target: SshTarget, models: Sequence[str | Path],
                       spec: BenchSpec = BenchSpec(), options: RemoteOptions = RemoteOptions(),
                       *, float_models: Mapping[str, str | Path] | None = None,
                       ) -> list[RemoteRun]:
    """Copy each model to the board, run the benchmark tool there at each of
    ``spec.threads`` and parse its output; one :class:`RemoteRun` per model and thread
    count.

    ``models`` are local ``.tflite`` files (checked before anything is copied);
    ``float_models`` maps ``str(model)`` to its float-baseline ``.tflite``, run with
    ``--use_xnnpack=true`` at the same thread counts.
    """
    from bnn_keras.export import read_flatbuffer

    float_models = dict(float_models or {})
    for model in [*models, *float_models.values()]:
        read_flatbuffer(model)  # a missing or non-model file fails here, not on the board
    results: list[RemoteRun] = []
    with RemoteSession(target, timeout=options.timeout) as session:
        kind, tool = find_runner(session, options)
        label = "lce_benchmark_model" if kind == "binary" else "python-runner"
        for index, model in enumerate(models):
            remote = session.copy(model, f"model-{index}.tflite")
            float_remote = None
            if str(model) in float_models:
                float_remote = session.copy(float_models[str(model)], f"float-{index}.tflite")
            for n in spec.threads:
                output, profile = _measure(
                    session, [*tool, f"--graph={remote}", *spec.tool_flags(n, profile=True)],
                    str(model))
                run = RemoteRun(str(model), n, label, output, op_profile=profile)
                if float_remote:
                    run.float_output, _ = _measure(
                        session, [*tool, f"--graph={float_remote}", *spec.tool_flags(n),
                                  "--use_xnnpack=true"], f"{model} (float baseline)")
                results.append(run)
    return results
