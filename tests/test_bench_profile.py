"""``bnn-keras bench --profile``: the op-profile parser, and what the local run prints.

The on-board run (lce_benchmark_model over SSH) is tested in test_deploy_ssh.py.
"""

import json

import pytest

from bnn_keras.bench.op_profile import parse_op_profile, types_of
from bnn_keras.bench.parse import parse_benchmark_output
from bnn_keras.errors import BnnError
from tests import ssh_board
from tests.cli_helpers import assert_one_line_error, run_main
from tests.ssh_board import profile_text

tiny = ssh_board.tiny

TIMINGS = """INFO: Num threads: [2]
INFO: count=5 first=2100 curr=1750 min=1740 max=2100 avg=1810 std=130
INFO: count=50 first=1760 curr=1712 min=1700 max=1790 avg=1720 std=20
INFO: Inference timings in us: Init: 9000, First inference: 2100, Warmup (avg): 1810, Inference (avg): 1720
"""  # noqa: E501

# TFLite before 2.13: a [start] column, node names without their index
OLD = """Operator-wise Profiling Info for Regular Benchmark Runs:
============================== Run Order ==============================
\t             [node type]\t          [start]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t  [mem KB]\t[times called]\t[Name]
\t                 CONV_2D\t            0.000\t    4.269\t    4.000\t 40.000%\t 40.000%\t     0.000\t        1\t[net/conv_0/Relu6]
\t       DEPTHWISE_CONV_2D\t            4.270\t    2.150\t    1.000\t 10.000%\t 50.000%\t     0.000\t        1\t[net/dw_1/Relu6]
\t                 CONV_2D\t            6.421\t    6.107\t    5.000\t 50.000%\t100.000%\t     0.000\t        1\t[net/conv_2/Relu6]

Timings (microseconds): count=50 first=12526 curr=10012 min=9900 max=12600 avg=10000 std=300
Memory (bytes): count=0
3 nodes observed
"""  # noqa: E501


def test_parses_the_regular_runs_profile():
    text = TIMINGS + profile_text()
    assert parse_benchmark_output(text).inference_avg_us == 1720  # the profile's totals ignored
    profile = parse_op_profile(text, "m.tflite", 2)
    assert [(n.op_type, n.index, n.avg_ms) for n in profile.nodes] == [
        ("CONV_2D", 0, 0.412), ("LceQuantize", 1, 0.051), ("LceBconv2d", 2, 1.204),
        ("MEAN", 3, 0.03), ("FULLY_CONNECTED", 4, 0.011)]  # not the initialization's
    bconv = profile.nodes[2]
    assert bconv.layer == "quant_conv2d" and bconv.first_ms == 1.324 and bconv.times_called == 1
    assert bconv.name == "model/quant_conv2d/QuantConv2D;model/quant_conv2d/"
    assert [(t.op_type, t.count, t.avg_ms, t.percent) for t in profile.types][:2] == [
        ("LceBconv2d", 1, 1.204, 70.492), ("CONV_2D", 1, 0.412, 24.122)]
    assert profile.total_ms == 1.708 and profile.threads == 2 and profile.has_times


def test_parses_the_older_layout_and_sums_types_itself():
    profile = parse_op_profile(OLD)
    assert [(n.name, n.index, n.avg_ms, n.first_ms) for n in profile.nodes] == [
        ("net/conv_0/Relu6", None, 4.0, 4.269), ("net/dw_1/Relu6", None, 1.0, 2.15),
        ("net/conv_2/Relu6", None, 5.0, 6.107)]
    assert profile.nodes[1].layer == "dw_1"
    # no "Summary by node type" table: summed from the nodes
    assert [(t.op_type, t.count, t.avg_ms, t.percent) for t in profile.types] == [
        ("CONV_2D", 2, 9.0, 90.0), ("DEPTHWISE_CONV_2D", 1, 1.0, 10.0)]
    assert profile.total_ms == 10.0
    assert types_of([]) == []


def test_no_profile_is_none():
    assert parse_op_profile(TIMINGS) is None
    assert parse_op_profile("") is None


@pytest.mark.parametrize("cut,needle", [
    (lambda t: t[:t.index("[Identity]:4")], "truncated"),  # stops inside the run order
    (lambda t: t.replace("\t    0.412\t", "\t    0.4x2\t", 1), "malformed row"),
    (lambda t: t.replace("Number of nodes executed: 5", "Number of nodes executed: 6"),
     "the tool executed 6"),
    (lambda t: t.replace("[node type]", "[kind]"), "unexpected table header"),
])
def test_garbled_profiles_are_one_line_errors(cut, needle):
    text = cut(TIMINGS + profile_text())
    with pytest.raises(BnnError, match="cannot parse the op profile") as info:
        parse_op_profile(text)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_local_profile_gives_counts_and_macs_and_says_why(tiny, tmp_path, capsys):
    code, out, err = run_main(["bench", tiny[1], "--profile", "--runs", "2", "--json"],
                              capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["runs"][0]["runner"] == "lce-interpreter" and data["runs"][0]["avg_ms"] > 0
    (profile,) = data["profiles"]
    assert profile["source"] == "flatbuffer" and "no per-op times here" in profile["note"]
    assert "LCE's Python Interpreter has no profiler" in profile["note"]
    assert [(n["op_type"], n["macs"], n["avg_ms"]) for n in profile["nodes"]] == [
        ("CONV_2D", 16 * 16 * 8 * 27, None), ("LceQuantize", None, None),
        ("LceBconv2d", 16 * 16 * 8 * 72, None), ("MEAN", None, None),
        ("FULLY_CONNECTED", 32, None)]
    assert profile["types"][0] == {"op_type": "LceBconv2d", "count": 1, "avg_ms": None,
                                   "percent": None, "macs": 16 * 16 * 8 * 72}

    plot = tmp_path / "profile.png"
    code, out, err = run_main(["bench", tiny[1], tiny[1], "--profile", "--runs", "2",
                               "--plot", plot], capsys)
    assert code == 0, err
    assert "note: no per-op times here" in out and "op counts and MACs per op type:" in out
    row = next(line.split() for line in out.splitlines() if line.startswith("LceBconv2d"))
    assert row == ["LceBconv2d", "1", "0.15", "1", "0.15"]  # A and B side by side
    assert plot.stat().st_size > 1000 and sorted(p.name for p in tmp_path.iterdir()) == [
        "profile.png"]


def test_profile_bad_options_are_one_line_errors(tiny, tmp_path, capsys):
    code, _, err = run_main(["bench", tiny[1], "--profile", "--csv"], capsys)
    assert_one_line_error(code, err, "--profile prints a table or --json, not --csv")
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, _, err = run_main(["bench", tiny[1], "--profile", "--runs", "1",
                             "--plot", blocker / "p.png"], capsys)
    assert_one_line_error(code, err, "cannot write")


def test_int8_nodes_line_up_with_their_float_layers(tiny):
    """An int8 node is named after the fake quantizer it fused (``conv_int8``); the
    per-layer table puts it on its float32 twin's row."""
    import numpy as np

    from bnn_keras import export
    from bnn_keras.bench.op_costs import flatbuffer_profile
    from bnn_keras.bench.op_profile import OpTime
    from bnn_keras.bench.profile_report import top_layers
    from bnn_keras.keras_files import load_keras_model
    from bnn_keras.quantize import calibrate_ranges, quantize_model

    assert OpTime("net/conv_int8/FakeQuantWithMinMaxVars", "CONV_2D").layer == "conv"
    model = load_keras_model(tiny[0])
    qat = quantize_model(model)
    calibrate_ranges(qat, [np.random.default_rng(0).standard_normal((4, 16, 16, 3))])
    flatbuffers = [export.convert(m) for m in (model, qat)]
    assert export.op_counts(flatbuffers[1]).get("QUANTIZE")  # an int8 + 1-bit file
    rows = dict(top_layers([flatbuffer_profile(f, "m", "") for f in flatbuffers]))
    # (not the classifier: the float file names its output "Identity", the model's)
    convs = {k: nodes for k, nodes in rows.items() if k[1] in ("CONV_2D", "LceBconv2d")}
    assert len(convs) == 2 and all(None not in nodes for nodes in convs.values()), rows
    assert all(a.macs == b.macs for a, b in convs.values())
