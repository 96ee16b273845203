"""Parse the output of ``lce_benchmark_model`` (TFLite's ``benchmark_model`` format).

The tool logs, among other lines (each possibly prefixed with ``INFO: ``)::

    Num threads: [4]
    count=5 first=125000 curr=98000 min=97000 max=125000 avg=103000 std=10000
    count=50 first=98000 curr=97500 min=96000 max=99000 avg=97500 std=600
    Inference timings in us: Init: 120500, First inference: 125000, Warmup (avg): 103000, Inference (avg): 97500
    Peak memory footprint (MB): init=10.5 overall=12.3

The first ``count=`` line is the warm-up, the last one the timed runs. Newer TFLite
versions add ``p5= median= p95=`` to the ``count=`` lines, print averages in scientific
notation (``1.23457e+06``) and replace the peak-memory line by ``Memory footprint delta
from the start of the tool (MB): init=.. overall=..`` and ``Overall peak memory
footprint (MB) via periodic monitoring: ..``. All of these are understood.
"""  # noqa: E501

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from bnn_keras.errors import BnnError

NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_PREFIX = re.compile(r"^\s*(?:(?:INFO|WARNING|VERBOSE|ERROR)\s*:\s*)?")
_COUNT = re.compile(r"(?:^|\s)count=")
_PAIR = re.compile(r"(\w+)=(\S*)")
_TIMINGS = re.compile(
    rf"Inference timings in us:\s*Init:\s*(?P<init>\S+?),\s*First inference:\s*(?P<first>\S+?),"
    rf"\s*Warmup \(avg\):\s*(?P<warmup>\S+?),\s*Inference \(avg\):\s*(?P<inference>{NUMBER})"
    r"(?P<rest>\S*)"
)
_PEAK_OLD = re.compile(r"Peak memory footprint \(MB\):\s*init=(\S+)\s+overall=(\S+)")
_DELTA = re.compile(r"Memory footprint delta from the start of the tool \(MB\):"
                    r"\s*init=(\S+)\s+overall=(\S+)")
_PEAK_NEW = re.compile(r"Overall peak memory footprint \(MB\)[^:]*:\s*(\S+)")
_THREADS = re.compile(r"^Num threads:\s*\[(\d+)\]")
_ERROR = re.compile(r"^\s*(?:ERROR\s*:|E\s)\s*(.*)$")
# the op profile's own totals (with --enable_op_profiling), not the benchmark's runs
_PROFILE_TOTALS = ("Timings (microseconds):", "Memory (bytes):")
_REQUIRED = ("count", "first", "curr", "min", "max", "avg", "std")


@dataclass
class BenchmarkOutput:
    """Figures of one ``lce_benchmark_model`` run; times in microseconds."""

    count: int
    first_us: float
    curr_us: float
    min_us: float
    max_us: float
    avg_us: float
    std_us: float
    init_us: float
    first_inference_us: float
    warmup_avg_us: float
    inference_avg_us: float
    median_us: float | None = None
    warmup_count: int | None = None
    num_threads: int | None = None
    peak_memory_mb: float | None = None
    memory_init_mb: float | None = None
    memory_overall_mb: float | None = None

    def as_dict(self) -> dict:
        """The figures as a plain dict."""
        return asdict(self)


def _number(text: str, what: str) -> float:
    if not re.fullmatch(NUMBER, text.strip()):
        raise BnnError(f"cannot parse lce_benchmark_model output: {what} is {text!r}, "
                       "not a number (garbled output?)")
    return float(text)


def strip_log_prefix(line: str) -> str:
    """``line`` without its line end, blanks and ``INFO:``-style level prefix."""
    return _PREFIX.sub("", line.rstrip("\r\n"), count=1).strip()


def _count_line(line: str) -> dict[str, float]:
    pairs = dict(_PAIR.findall(line))
    missing = [k for k in _REQUIRED if k not in pairs]
    if missing:
        raise BnnError(f"cannot parse lce_benchmark_model output: the line {line[:120]!r} "
                       f"lacks {', '.join(k + '=' for k in missing)} (truncated output?)")
    values = {k: _number(v, k + "=") for k, v in pairs.items() if k in (*_REQUIRED, "median")}
    return values


def parse_benchmark_output(text: str) -> BenchmarkOutput:
    """Figures from the text ``lce_benchmark_model`` (or ``benchmark_model``) printed.

    Raises :class:`BnnError` with a one-line reason when the output is truncated,
    garbled, or reports an error instead of timings.
    """
    raw_lines = text.splitlines(keepends=True)
    lines = [strip_log_prefix(line) for line in raw_lines]
    counts = [_count_line(line) for line in lines
              if _COUNT.search(line) and not line.startswith(_PROFILE_TOTALS)]
    timings = None
    memory: dict[str, float] = {}
    threads = None
    for raw, line in zip(raw_lines, lines):
        if (m := _TIMINGS.search(line)) is not None:
            if not raw.endswith(("\n", "\r")):
                # The last line with no line end: a number may be cut short.
                raise BnnError("cannot parse lce_benchmark_model output: it ends inside the "
                               f"line {line[:160]!r} (truncated output?)")
            timings = m
        elif "Inference timings in us" in line:
            raise BnnError(f"cannot parse lce_benchmark_model output: malformed line "
                           f"{line[:160]!r} (truncated or garbled output?)")
        if (m := _PEAK_OLD.search(line)) is not None:
            memory["memory_init_mb"] = _number(m.group(1), "init memory")
            memory["memory_overall_mb"] = _number(m.group(2), "overall memory")
            memory.setdefault("peak_memory_mb", memory["memory_overall_mb"])
        if (m := _DELTA.search(line)) is not None:
            memory["memory_init_mb"] = _number(m.group(1), "init memory")
            memory["memory_overall_mb"] = _number(m.group(2), "overall memory")
        if (m := _PEAK_NEW.search(line)) is not None:
            memory["peak_memory_mb"] = _number(m.group(1), "peak memory")
        if (m := _THREADS.search(line)) is not None:
            threads = int(m.group(1))
    if timings is None:
        errors = [m.group(1).strip() for line in text.splitlines()
                  if (m := _ERROR.match(line)) and m.group(1).strip()]
        if errors:
            raise BnnError(f"lce_benchmark_model failed: {errors[0][:200]}")
        last = next((line for line in reversed(lines) if line), "")
        raise BnnError("cannot parse lce_benchmark_model output: no 'Inference timings in us' "
                       f"line (truncated output?); last line: {last[:120]!r}")
    if timings.group("rest"):
        raise BnnError(f"cannot parse lce_benchmark_model output: 'Inference (avg)' is "
                       f"{timings.group('inference') + timings.group('rest')!r} (garbled?)")
    if not counts:
        raise BnnError("cannot parse lce_benchmark_model output: no 'count=' line with the "
                       "per-run statistics (truncated output?)")
    run = counts[-1]
    return BenchmarkOutput(
        count=int(run["count"]), first_us=run["first"], curr_us=run["curr"],
        min_us=run["min"], max_us=run["max"], avg_us=run["avg"], std_us=run["std"],
        median_us=run.get("median"),
        warmup_count=int(counts[0]["count"]) if len(counts) > 1 else None,
        init_us=_number(timings.group("init"), "Init"),
        first_inference_us=_number(timings.group("first"), "First inference"),
        warmup_avg_us=_number(timings.group("warmup"), "Warmup (avg)"),
        inference_avg_us=_number(timings.group("inference"), "Inference (avg)"),
        num_threads=threads, **memory,
    )
