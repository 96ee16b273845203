"""Benchmarking flatbuffers: locally with LCE's interpreter."""

from bnn_keras.bench.local import Latency, benchmark_flatbuffer

__all__ = ["Latency", "benchmark_flatbuffer"]
