"""Op profiles side by side: time per op type and per layer as text tables, a bar chart.

Each profile (one model at one thread count) is a letter, A, B, ...; two flatbuffers of
one model (float32 and int8) line up by op type and by layer (a node is matched by its
Keras layer, its op type and its rank among such nodes).
"""

from __future__ import annotations

import io
import os
import string
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from bnn_keras.bench.op_profile import OpProfile, OpTime, TypeTime

#: layers shown in the text table and the chart (``--json`` has every node)
TOP_LAYERS = 20


def _letter(i: int) -> str:
    return string.ascii_uppercase[i % 26] + ("" if i < 26 else str(i // 26))


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _mmac(macs: int | None) -> str:
    return _fmt(None if macs is None else macs / 1e6, ".2f")


def _table(header: list[str], rows: list[list[str]], left: int = 1) -> list[str]:
    """Fixed-width lines; the first ``left`` columns left-aligned, the rest right."""
    cells = [header, *rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(c.ljust(w) if i < left else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths))).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def _legend(profiles: list[OpProfile]) -> list[str]:
    lines = []
    for i, p in enumerate(profiles):
        threads = "" if p.threads is None else f", {p.threads} thread(s)"
        total = "" if p.total_ms is None else f", profiled ops {p.total_ms:.3f} ms/inference"
        lines.append(f"  {_letter(i)} = {p.model}{threads}: {p.source}{total}")
    for note in dict.fromkeys(p.note for p in profiles if p.note):
        lines.append(f"  note: {note}")
    return lines


def _type_rows(profiles: list[OpProfile], timed: bool) -> tuple[list[str], list[list[str]]]:
    by_profile = [{t.op_type: t for t in p.types} for p in profiles]
    order = list(dict.fromkeys(t.op_type for p in profiles for t in p.types))
    order.sort(key=lambda k: max((m[k].avg_ms or 0.0, m[k].macs or 0)
                                 for m in by_profile if k in m), reverse=True)
    header = ["op type"]
    for i, _ in enumerate(profiles):
        a = _letter(i)
        header += [f"{a} n", *([f"{a} ms", f"{a} %"] if timed else []), f"{a} MMAC"]
    rows = []
    for op_type in [*order, None]:
        row = [op_type or "total"]
        for m in by_profile:
            types = list(m.values()) if op_type is None else [m[op_type]] if op_type in m else []
            row += _type_cells(types, op_type is None, timed)
        rows.append(row)
    return header, rows


def _type_cells(types: list[TypeTime], total: bool, timed: bool) -> list[str]:
    if not types:
        return ["-"] * (4 if timed else 2)
    ms = [t.avg_ms for t in types if t.avg_ms is not None]
    macs = [t.macs for t in types if t.macs is not None]
    cells = [str(sum(t.count for t in types))]
    if timed:
        pct = 100.0 if total and ms else types[0].percent
        cells += [_fmt(sum(ms) if ms else None, ".3f"), "-" if pct is None else f"{pct:.1f}%"]
    return cells + [_mmac(sum(macs) if macs else None)]


def layer_keys(profile: OpProfile) -> dict[tuple[str, str, int], OpTime]:
    """Each node keyed by (layer, op type, rank among nodes with that layer and type)."""
    seen: Counter = Counter()
    keyed = {}
    for node in profile.nodes:
        base = (node.layer, node.op_type.split("/")[0])
        keyed[(*base, seen[base])] = node
        seen[base] += 1
    return keyed


def _weight(node: OpTime | None) -> tuple[float, int]:
    return (0.0, 0) if node is None else (node.avg_ms or 0.0, node.macs or 0)


def top_layers(profiles: list[OpProfile], limit: int = TOP_LAYERS,
               ) -> list[tuple[tuple[str, str, int], list[OpTime | None]]]:
    """The ``limit`` nodes with the most time (else MACs) in any profile, matched across
    the profiles (None where a profile has no such node)."""
    keyed = [layer_keys(p) for p in profiles]
    keys = list(dict.fromkeys(k for m in keyed for k in m))
    keys.sort(key=lambda k: max(_weight(m.get(k)) for m in keyed), reverse=True)
    return [(k, [m.get(k) for m in keyed]) for k in keys[:limit]]


def _layer_rows(profiles: list[OpProfile], timed: bool) -> tuple[list[str], list[list[str]]]:
    header = ["layer", "op type"]
    for i, _ in enumerate(profiles):
        header += [f"{_letter(i)} ms"] if timed else []
        header += [f"{_letter(i)} MMAC"]
    rows = []
    for (layer, op_type, rank), nodes in top_layers(profiles):
        row = [layer + (f" #{rank + 1}" if rank else ""), op_type]
        for node in nodes:
            row += [_fmt(None if node is None else node.avg_ms, ".3f")] if timed else []
            row += [_mmac(None if node is None else node.macs)]
        rows.append(row)
    return header, rows


def format_profiles(profiles: list[OpProfile]) -> str:
    """The op-type table and the slowest layers, profiles side by side."""
    timed = any(p.has_times for p in profiles)
    what = "time" if timed else "op counts and MACs"
    lines = [f"op profile ({what}, per inference):", *_legend(profiles), ""]
    lines += [f"{what} per op type:", *_table(*_type_rows(profiles, timed)), ""]
    n = len({k for p in profiles for k in layer_keys(p)})
    shown = f"the {min(n, TOP_LAYERS)} with the most {'time' if timed else 'MACs'}"
    lines += [f"{what} per layer ({shown} of {n}; --json has every node):",
              *_table(*_layer_rows(profiles, timed), left=2)]
    return "\n".join(lines)


def _bars(ax, labels: list[str], series: list[list[float]], names: list[str],
          xlabel: str) -> None:
    height = 0.8 / max(1, len(series))
    for i, (values, name) in enumerate(zip(series, names)):
        ax.barh([y + i * height for y in range(len(labels))], values, height=height,
                label=name)
    ax.set_yticks([y + 0.4 - height / 2 for y in range(len(labels))], labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)


def plot_profiles(profiles: list[OpProfile], path: str | os.PathLike) -> Path:
    """A bar chart: time (else MACs) per op type and for the top layers, one colour per
    profile; written atomically as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bnn_keras.files import atomic_write_bytes

    timed = any(p.has_times for p in profiles)
    value: Callable = (lambda x: x.avg_ms or 0.0) if timed else (lambda x: (x.macs or 0) / 1e6)
    unit = "ms per inference" if timed else "MMAC (no per-op times)"
    names = [f"{_letter(i)}: {Path(p.model).name}"
             + ("" if p.threads is None else f" ({p.threads} thr)")
             for i, p in enumerate(profiles)]
    types = list(dict.fromkeys(t.op_type for p in profiles for t in p.types))
    by_type = [{t.op_type: value(t) for t in p.types} for p in profiles]
    layers = top_layers(profiles)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, max(4.0, 0.25 * len(layers) + 1.5)))
    _bars(left, types, [[m.get(t, 0.0) for t in types] for m in by_type], names, unit)
    left.set_title("per op type")
    _bars(right, [f"{k[0]} ({k[1]})" for k, _ in layers],
          [[0.0 if nodes[i] is None else value(nodes[i]) for _, nodes in layers]
           for i in range(len(profiles))], names, unit)
    right.set_title(f"top {len(layers)} layers")
    left.legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=110)
    finally:
        plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())
