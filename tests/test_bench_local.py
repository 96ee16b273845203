"""Local latency: the best-of-rounds median the benchmarks compare flatbuffers by."""

import importlib

from bnn_keras.bench.local import Latency, best_median_ms


def test_best_median_takes_turns_and_keeps_each_lowest(monkeypatch):
    local = importlib.import_module("bnn_keras.bench.local")
    medians = iter([5.0, 9.0, 4.0, 12.0, 6.0, 8.0])  # a, b, a, b, a, b
    calls = []

    def fake(flatbuffer, *, threads, runs):
        calls.append((flatbuffer, threads, runs))
        m = next(medians)
        return Latency(runs, threads, m, m, m, m)

    monkeypatch.setattr(local, "benchmark_flatbuffer", fake)
    best = best_median_ms({"a": b"A", "b": b"B"}, threads=2, runs=7, repeats=3)
    assert best == {"a": 4.0, "b": 8.0}
    assert calls == [(b"A", 2, 7), (b"B", 2, 7)] * 3
