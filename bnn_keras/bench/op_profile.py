"""Parse the op profile ``lce_benchmark_model --enable_op_profiling=true`` prints.

The tool (TFLite's ``benchmark_model`` with LCE's ops) ends its output with TFLite's
profile summary (``tensorflow/lite/profiling/profile_summarizer.cc`` filling
``tensorflow/core/util/stats_calculator.cc``)::

    Operator-wise Profiling Info for Regular Benchmark Runs:
    ============================== Run Order ==============================
    \t [node type]\t [first]\t [avg ms]\t [%]\t [cdf%]\t [mem KB]\t[times called]\t[Name]
    \t     CONV_2D\t   0.412\t    0.398\t 12.5%\t 12.5%\t    0.000\t        1\t[model/conv2d/Conv2D1]:0
    ...
    ============================== Top by Computation Time ==============================
    ...
    Number of nodes executed: 5
    ============================== Summary by node type ==============================
    \t [Node type]\t [count]\t [avg ms]\t [avg %]\t [cdf %]\t [mem KB]\t[times called]
    \t  LceBconv2d\t       1\t    1.204\t 37.8%\t 37.8%\t    0.000\t        1
    ...
    Timings (microseconds): count=50 first=3312 curr=3180 min=3102 max=3490 avg=3185 std=61
    Memory (bytes): count=0
    5 nodes observed

TFLite versions before 2.13 have a ``[start]`` column after ``[node type]``; the columns
are read from each table's header, so both are understood. A node's name is its output
tensors' names in brackets and ``:`` its index in the graph. The tables use tabs and
fixed widths; rows are read as the node type, one number per numeric column, the name.
"""  # noqa: E501

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from bnn_keras.bench.parse import NUMBER, strip_log_prefix
from bnn_keras.errors import BnnError
from bnn_keras.layer_names import quantized_layer

REGULAR_RUNS = "Operator-wise Profiling Info for Regular Benchmark Runs"
_SECTION = re.compile(r"^=+ (?P<title>.+?) =+$")
_COLUMN = re.compile(r"\[([^\]]+)\]")
_NODE_NAME = re.compile(r"^\[(?P<outputs>.*)\](?::(?P<index>\d+))?$")
_TOTAL = re.compile(r"^Timings \(microseconds\):.*\bavg=(?P<avg>\S+)")
_EXECUTED = re.compile(r"^Number of nodes executed:\s*(\d+)")
_CELL = rf"{NUMBER}%?"


@dataclass
class OpTime:
    """One node (operator) of the graph; times in ms per inference."""

    name: str
    op_type: str
    index: int | None = None
    avg_ms: float | None = None
    first_ms: float | None = None
    percent: float | None = None
    times_called: int | None = None
    macs: int | None = None

    @property
    def layer(self) -> str:
        """The Keras layer the node comes from, read from its first output's name
        (``model/quant_conv2d/QuantConv2D;...`` -> ``quant_conv2d``), else the name. An
        int8 node named after the fake quantizer it fused (``quant_conv2d_int8``) is its
        layer's, as in the float32 flatbuffer."""
        first = self.name.split(";")[0].split(", ")[0]
        parts = first.split("/")
        return quantized_layer(parts[1] if len(parts) >= 3 else first)


@dataclass
class TypeTime:
    """All nodes of one op type; ``avg_ms`` is their sum per inference."""

    op_type: str
    count: int
    avg_ms: float | None = None
    percent: float | None = None
    macs: int | None = None


@dataclass
class OpProfile:
    """Where one model's inference time goes, per node and per op type.

    ``source`` says where the figures come from; without timings (``has_times`` false)
    ``note`` says why, and only op counts and MACs are known.
    """

    model: str
    source: str
    nodes: list[OpTime] = field(default_factory=list)
    types: list[TypeTime] = field(default_factory=list)
    threads: int | None = None
    total_ms: float | None = None
    note: str | None = None

    @property
    def has_times(self) -> bool:
        return any(n.avg_ms is not None for n in self.nodes)

    def as_dict(self) -> dict:
        """Every field, each node with its ``layer``."""
        data = asdict(self)
        for node, out in zip(self.nodes, data["nodes"]):
            out["layer"] = node.layer
        return data


def _columns(header: str) -> list[str]:
    names = [" ".join(c.lower().split()) for c in _COLUMN.findall(header)]
    if not names or names[0] != "node type":
        raise BnnError(f"cannot parse the op profile: unexpected table header {header[:120]!r}")
    return names


def _row(line: str, columns: list[str]) -> dict[str, str]:
    """One table row as ``{column: text}``."""
    numeric = [c for c in columns[1:] if c != "name"]
    tail = r"\s+(?P<name>\S.*?)" if "name" in columns else ""
    m = re.match(rf"^\s*(?P<type>\S.*?)\s+(?P<cells>{_CELL}(?:\s+{_CELL}){{{len(numeric) - 1}}})"
                 rf"{tail}\s*$", line)
    if m is None:
        raise BnnError(f"cannot parse the op profile: malformed row {line.strip()[:120]!r} "
                       "(truncated or garbled output?)")
    cells = dict(zip(numeric, m.group("cells").split()))
    cells["node type"] = m.group("type").strip()
    if "name" in columns:
        cells["name"] = m.group("name")
    return cells


def _number(cells: dict[str, str], *keys: str) -> float | None:
    for key in keys:
        if key in cells:
            return float(cells[key].rstrip("%"))
    return None


def _op_time(cells: dict[str, str]) -> OpTime:
    name, index = cells["name"], None
    if (m := _NODE_NAME.match(name)) is not None:
        name = m.group("outputs")
        index = None if m.group("index") is None else int(m.group("index"))
    called = _number(cells, "times called")
    return OpTime(name=name, op_type=cells["node type"], index=index,
                  avg_ms=_number(cells, "avg ms"), first_ms=_number(cells, "first"),
                  percent=_number(cells, "%"),
                  times_called=None if called is None else int(called))


def _type_time(cells: dict[str, str]) -> TypeTime:
    return TypeTime(op_type=cells["node type"], count=int(_number(cells, "count") or 0),
                    avg_ms=_number(cells, "avg ms"), percent=_number(cells, "avg %", "%"))


def _tables(lines: list[str]) -> tuple[dict[str, list[dict[str, str]]], float | None, int | None]:
    """The tables of the regular runs' section by title, the profiled run total (ms) and
    the node count the tool states."""
    tables: dict[str, list[dict[str, str]]] = {}
    total = executed = None
    rows: list[dict[str, str]] | None = None
    columns: list[str] | None = None
    for line in lines:
        if line.startswith("Subgraph (index:") or "Profiling Info for" in line:
            break  # the main graph's figures are complete
        if (m := _SECTION.match(line)) is not None:
            rows, columns = tables.setdefault(m.group("title"), []), None
        elif (m := _EXECUTED.match(line)) is not None:
            executed, rows = int(m.group(1)), None
        elif (m := _TOTAL.match(line)) is not None:
            total = float(m.group("avg")) / 1e3 if re.fullmatch(NUMBER, m.group("avg")) else None
            break
        elif rows is not None and line:
            if columns is None:
                columns = _columns(line)
            else:
                rows.append(_row(line, columns))
        elif not line:
            rows = None if columns is not None else rows
    if total is None:
        raise BnnError("cannot parse the op profile: no 'Timings (microseconds)' line after "
                       "its tables (truncated output?)")
    return tables, total, executed


def parse_op_profile(text: str, model: str = "", threads: int | None = None,
                     ) -> OpProfile | None:
    """The op profile in the tool's output ``text``; None when it printed none (run
    without ``--enable_op_profiling=true``, or by a runner that cannot profile).

    Raises :class:`BnnError` (one line) for a profile cut short or garbled.
    """
    lines = [strip_log_prefix(line) for line in text.splitlines()]
    starts = [i for i, line in enumerate(lines) if line.startswith(REGULAR_RUNS)]
    if not starts:
        return None
    tables, total, executed = _tables(lines[starts[-1] + 1:])
    nodes = [_op_time(cells) for cells in tables.get("Run Order", [])]
    if not nodes:
        raise BnnError("cannot parse the op profile: no 'Run Order' table (truncated output?)")
    if executed is not None and len(nodes) != executed:
        raise BnnError(f"cannot parse the op profile: {len(nodes)} nodes in 'Run Order' but "
                       f"the tool executed {executed} (truncated output?)")
    types = [_type_time(cells) for cells in tables.get("Summary by node type", [])]
    return OpProfile(model=model, source="lce_benchmark_model --enable_op_profiling=true",
                     nodes=nodes, types=types or types_of(nodes), threads=threads,
                     total_ms=total)


def types_of(nodes: list[OpTime]) -> list[TypeTime]:
    """Per op type, summed over ``nodes``, slowest first (most MACs first without times)."""
    by_type: dict[str, TypeTime] = {}
    for node in nodes:
        t = by_type.setdefault(node.op_type, TypeTime(node.op_type, 0))
        t.count += 1
        if node.avg_ms is not None:
            t.avg_ms = (t.avg_ms or 0.0) + node.avg_ms
        if node.macs is not None:
            t.macs = (t.macs or 0) + node.macs
    total = sum(t.avg_ms or 0.0 for t in by_type.values())
    for t in by_type.values():
        t.percent = None if t.avg_ms is None or not total else 100.0 * t.avg_ms / total
    return sorted(by_type.values(), key=lambda t: (-(t.avg_ms or 0.0), -(t.macs or 0)))
