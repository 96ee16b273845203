"""``bnn-keras bench``."""

from __future__ import annotations

import json

import click


@click.command()
@click.argument("model_path", type=click.Path(dir_okay=False))
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--runs", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--warmup", type=click.IntRange(min=0), default=5, show_default=True)
@click.option("--indirect-bgemm", is_flag=True, help="Use LCE's indirect BGEMM kernels.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench(model_path, threads, runs, warmup, indirect_bgemm, as_json) -> None:
    """Local latency of MODEL_PATH (.tflite) with LCE's interpreter (batch size 1)."""
    from bnn_keras.bench import benchmark_flatbuffer
    from bnn_keras.export import read_flatbuffer

    latency = benchmark_flatbuffer(read_flatbuffer(model_path), threads=threads, runs=runs,
                                   warmup=warmup, use_indirect_bgemm=indirect_bgemm)
    if as_json:
        click.echo(json.dumps({"model": model_path, **latency.as_dict()}, indent=2))
        return
    click.echo(f"{model_path}: {runs} runs, {threads} thread(s), {warmup} warm-up")
    click.echo(f"median {latency.median_ms:.2f} ms   min {latency.min_ms:.2f} ms   "
               f"max {latency.max_ms:.2f} ms")
