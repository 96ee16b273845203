"""Parsing lce_benchmark_model's output (TFLite's benchmark_model format)."""

import pytest

from bnn_keras.bench.parse import parse_benchmark_output
from bnn_keras.errors import BnnError

# The format of TF 2.3-2.5-era builds (LCE 0.4-0.6): no prefix, "Peak memory footprint".
OLD = """\
STARTING!
Log parameter values verbosely: [0]
Num threads: [4]
Graph: [quicknet.tflite]
#threads used for CPU inference: [4]
Loaded model quicknet.tflite
The input model file size (MB): 3.19
Initialized session in 14.513ms.
Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
count=28 first=20373 curr=17602 min=17476 max=20373 avg=17919.5 std=561

Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
count=57 first=17656 curr=17590 min=17469 max=18203 avg=17637.8 std=141

Inference timings in us: Init: 14513, First inference: 20373, Warmup (avg): 17919.5, Inference (avg): 17637.8
Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
Peak memory footprint (MB): init=2.30469 overall=9.57812
"""  # noqa: E501

# Newer builds: "INFO: " prefixes, percentiles, scientific notation, two memory lines.
NEW = """\
INFO: STARTING!
INFO: Log parameter values verbosely: [0]
INFO: Num threads: [1]
INFO: Graph: [/tmp/bnn-keras.Ab12/model-0.tflite]
INFO: Use indirect BGEMM: [1]
INFO: #threads used for CPU inference: [1]
INFO: Loaded model /tmp/bnn-keras.Ab12/model-0.tflite
INFO: Initialized TensorFlow Lite runtime.
INFO: The input model file size (MB): 4.21894
INFO: Initialized session in 3.337ms.
INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=1 first=1.23457e+06 curr=1.23457e+06 min=1.23457e+06 max=1.23457e+06 avg=1.23457e+06 std=0 p5=1234567 median=1234567 p95=1234567

INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
INFO: count=50 first=1061000 curr=1052000 min=1.0466e+06 max=1.1023e+06 avg=1.05628e+06 std=9823 p5=1047000 median=1054000 p95=1080000

INFO: Inference timings in us: Init: 3337, First inference: 1.23457e+06, Warmup (avg): 1.23457e+06, Inference (avg): 1.05628e+06
INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
INFO: Memory footprint delta from the start of the tool (MB): init=2.43359 overall=8.67578
INFO: Overall peak memory footprint (MB) via periodic monitoring: 13.1797
INFO: Memory status at the end of exeution:
INFO: - VmRSS              : 13 MB
"""  # noqa: E501

NO_MEMORY = "".join(line for line in OLD.splitlines(keepends=True)
                     if "memory" not in line.lower())


def test_old_format():
    out = parse_benchmark_output(OLD)
    assert out.num_threads == 4
    assert (out.count, out.warmup_count) == (57, 28)
    assert (out.min_us, out.max_us, out.avg_us, out.std_us) == (17469, 18203, 17637.8, 141)
    assert (out.init_us, out.first_inference_us) == (14513, 20373)
    assert (out.warmup_avg_us, out.inference_avg_us) == (17919.5, 17637.8)
    assert out.memory_init_mb == pytest.approx(2.30469)
    assert out.peak_memory_mb == pytest.approx(9.57812)
    assert out.median_us is None


def test_new_format_with_prefixes_and_scientific_notation():
    out = parse_benchmark_output(NEW)
    assert out.num_threads == 1 and out.count == 50 and out.warmup_count == 1
    assert out.min_us == pytest.approx(1.0466e6)
    assert out.avg_us == pytest.approx(1.05628e6)
    assert out.median_us == 1054000
    assert out.first_inference_us == pytest.approx(1.23457e6)
    assert out.inference_avg_us == pytest.approx(1.05628e6)
    assert out.memory_overall_mb == pytest.approx(8.67578)
    assert out.peak_memory_mb == pytest.approx(13.1797)


def test_peak_memory_is_optional_and_crlf_is_fine():
    out = parse_benchmark_output(NO_MEMORY.replace("\n", "\r\n"))
    assert out.inference_avg_us == 17637.8
    assert out.peak_memory_mb is None and out.memory_init_mb is None


def test_single_count_line():
    """With --warmup_runs=0 --warmup_min_secs=0 there may be only the timed runs' line."""
    lines = [line for line in OLD.splitlines() if "count=28" not in line]
    out = parse_benchmark_output("\n".join(lines) + "\n")
    assert out.count == 57 and out.warmup_count is None


@pytest.mark.parametrize("text,needle", [
    ("", "no 'Inference timings in us' line"),
    (OLD[:OLD.index("Inference timings")], "truncated"),
    (OLD[:OLD.index("Inference timings") + 40], "malformed line"),
    (NEW[:NEW.index("Inference (avg)") + 20], "ends inside the line"),
    (OLD.replace("avg=17637.8", "avg=17x37.8"), "avg= is '17x37.8', not a number"),
    (OLD.replace("min=17469 max=18203 ", ""), "lacks min=, max="),
    (OLD.replace("Inference (avg): 17637.8", "Inference (avg): 176#7.8"), "garbled"),
    (OLD.replace("Warmup (avg): 17919.5", "Warmup (avg): nan?"), "not a number"),
    ("\n".join(line for line in OLD.splitlines() if not line.startswith("count=")),
     "no 'count=' line"),
    ("\x00\xff garbage \x1b[2J\nrandom text\n", "no 'Inference timings in us' line"),
    ("INFO: STARTING!\nERROR: Could not open '/tmp/x/model-0.tflite'.\n"
     "ERROR: Benchmarking failed.\n", "lce_benchmark_model failed: Could not open"),
])
def test_truncated_or_garbled_output_is_a_clear_error(text, needle):
    with pytest.raises(BnnError) as info:
        parse_benchmark_output(text)
    message = str(info.value)
    assert needle in message
    assert "\n" not in message


def test_board_runner_prints_the_same_format(tmp_path):
    """deploy/lce_bench_runner.py: LCE's interpreter without TensorFlow, output the parser
    reads; a file that is not a model gives the tool's ERROR line and status 1."""
    import subprocess
    import sys
    from pathlib import Path

    import larq as lq
    import tf_keras as keras

    from bnn_keras.export import convert

    x = keras.Input((8, 8, 4))
    y = lq.layers.QuantConv2D(8, 3, padding="same", pad_values=1.0, input_quantizer="ste_sign",
                              kernel_quantizer="ste_sign", kernel_constraint="weight_clip")(x)
    model_path = tmp_path / "m.tflite"
    model_path.write_bytes(convert(keras.Model(x, y)))
    runner = Path(__file__).resolve().parents[1] / "deploy" / "lce_bench_runner.py"
    check = ("import runpy, sys; sys.argv = sys.argv[1:]; "
             "sys.modules['__main__'].__dict__.update(runpy.run_path(sys.argv[0])); "
             "code = main(); "
             "assert 'tensorflow' not in sys.modules, 'the runner imported TensorFlow'; "
             "sys.exit(code)")

    def run(*args):
        return subprocess.run([sys.executable, "-c", check, str(runner), *args],
                              capture_output=True, text=True, timeout=120)

    proc = run(f"--graph={model_path}", "--num_threads=2", "--num_runs=7", "--warmup_runs=2",
               "--min_secs=0", "--warmup_min_secs=0", "--use_indirect_bgemm=true")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = parse_benchmark_output(proc.stdout)
    assert out.count == 7 and out.warmup_count == 2 and out.num_threads == 2
    assert 0 < out.min_us <= out.avg_us <= out.max_us and out.peak_memory_mb > 0
    assert "Use indirect BGEMM: [1]" in proc.stdout

    (tmp_path / "notes.tflite").write_text("not a model")
    proc = run(f"--graph={tmp_path / 'notes.tflite'}")
    assert proc.returncode == 1
    with pytest.raises(BnnError, match="lce_benchmark_model failed: .* is not a TFLite model"):
        parse_benchmark_output(proc.stdout)
