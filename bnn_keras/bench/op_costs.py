"""What a flatbuffer says about its ops without running them: counts and MACs per node.

The local ``bnn-keras bench --profile`` has no per-op times (:data:`NO_LOCAL_TIMES` says
why) and shows these instead; a board's op profile gets each node's MACs beside its time.
"""

from __future__ import annotations

import math

from bnn_keras.bench.op_profile import OpProfile, OpTime, types_of
from bnn_keras.export.flatbuffer import OpNode, op_nodes

#: why the local benchmark gives no time per op
NO_LOCAL_TIMES = (
    "no per-op times here: LCE's Python Interpreter has no profiler (it offers predict() "
    "and the tensors' shapes, types and scales only) and TensorFlow's tf.lite.Interpreter "
    "cannot run LCE's custom ops; shown instead: op counts and MACs from the flatbuffer "
    "(per-op times: --ssh to a board with lce_benchmark_model)")

#: why the board's Python runner gives no time per op
NO_RUNNER_TIMES = ("no per-op times: the board has no lce_benchmark_model, and its Python "
                   "runner (LCE's Python Interpreter) has no profiler; shown instead: op "
                   "counts and MACs from the flatbuffer")


def node_macs(node: OpNode) -> int | None:
    """Multiply-accumulates of a conv, depthwise conv, fully connected layer or
    ``LceBconv2d`` (binary MACs) at batch size 1; None for other ops."""
    w, out = node.weight_shape, math.prod(node.output_shape)
    if w is None or not node.output_shape:
        return None
    if node.op_type == "CONV_2D" and len(w) == 4:
        return out * w[1] * w[2] * w[3]
    if node.op_type == "DEPTHWISE_CONV_2D" and len(w) == 4:
        return out * w[1] * w[2]
    if node.op_type == "FULLY_CONNECTED" and len(w) == 2:
        return out * w[1]
    if node.op_type == "LceBconv2d" and len(w) == 4:  # the filter is bitpacked: 32 per int
        return out * w[1] * w[2] * (node.channels_in or 32 * w[3])
    return None


def flatbuffer_profile(flatbuffer: bytes, model: str, note: str) -> OpProfile:
    """Op counts and MACs of ``flatbuffer``, no times; ``note`` says why not."""
    nodes = [OpTime(name=", ".join(n.outputs), op_type=n.op_type, index=n.index,
                    macs=node_macs(n)) for n in op_nodes(flatbuffer)]
    return OpProfile(model=model, source="flatbuffer", nodes=nodes, types=types_of(nodes),
                     note=note)


def add_macs(profile: OpProfile, flatbuffer: bytes) -> None:
    """Give each node of a measured profile its MACs (matched by node index and op
    type), and each op type their sum."""
    graph = op_nodes(flatbuffer)
    for node in profile.nodes:
        if node.index is not None and node.index < len(graph):
            ours = graph[node.index]
            if ours.op_type == node.op_type.split("/")[0]:
                node.macs = node_macs(ours)
    for t in profile.types:
        macs = [n.macs for n in profile.nodes if n.op_type == t.op_type and n.macs is not None]
        t.macs = sum(macs) if macs else None
