"""Benchmarking flatbuffers: locally with LCE's interpreter, or on a board over SSH with
``lce_benchmark_model`` (or the board-side Python runner), plus the float baseline
(``bnn_keras.bench.float_baseline``, imported on demand: it needs TensorFlow) and the op
profile of ``--profile`` (:mod:`~bnn_keras.bench.op_profile` parses the tool's,
:mod:`~bnn_keras.bench.op_costs` adds MACs, :mod:`~bnn_keras.bench.profile_report` prints
and plots them)."""

from bnn_keras.bench.local import Latency, benchmark_flatbuffer, probe_in_subprocess
from bnn_keras.bench.op_profile import OpProfile, OpTime, TypeTime, parse_op_profile
from bnn_keras.bench.parse import BenchmarkOutput, parse_benchmark_output
from bnn_keras.bench.remote import RemoteOptions, RemoteRun, benchmark_over_ssh
from bnn_keras.bench.spec import BenchSpec
from bnn_keras.bench.ssh import SshTarget
from bnn_keras.bench.table import BenchRow, format_table, known_accuracy, to_csv

__all__ = [
    "BenchRow", "BenchSpec", "BenchmarkOutput", "Latency", "OpProfile", "OpTime",
    "RemoteOptions", "RemoteRun", "SshTarget", "TypeTime", "benchmark_flatbuffer",
    "benchmark_over_ssh", "format_table", "known_accuracy", "parse_benchmark_output",
    "parse_op_profile", "probe_in_subprocess", "to_csv",
]
