"""``bnn-keras bench``: locally with LCE's interpreter, or on a board over SSH."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click

from bnn_keras.cli.options import trust_code_option

#: The most threads a measurement may ask for (boards have 4 to 8 cores; TFLite takes
#: the count as a C int and LCE's interpreter fails on larger ones)
MAX_THREADS = 1024


def _thread_list(ctx, param, value):
    try:
        threads = [int(v) for v in str(value).split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected thread counts like 1,4, got {value!r}") from None
    if not threads or min(threads) < 1:
        raise click.BadParameter(f"thread counts must be >= 1, got {value!r}")
    if max(threads) > MAX_THREADS:
        raise click.BadParameter(f"thread counts must be at most {MAX_THREADS}, got "
                                 f"{max(threads)} (the interpreter would refuse the count, "
                                 "not the model)")
    return list(dict.fromkeys(threads))


def _keras_beside(tflite: Path, explicit: str | None):
    """The Keras model of ``tflite`` for the float baseline."""
    from bnn_keras.errors import BnnError
    from bnn_keras.keras_files import load_keras_model
    from bnn_keras.training.run_folder import RunFolder

    if explicit:
        return load_keras_model(explicit)
    for candidate in (tflite.with_suffix(".keras"), RunFolder(tflite.parent).model):
        if candidate.is_file():
            return load_keras_model(candidate)
    raise BnnError(f"--float-baseline needs the Keras model of {tflite}: no "
                   f"{tflite.with_suffix('.keras').name} or model.keras beside it "
                   "(pass --keras PATH)")


@click.command()
@trust_code_option
@click.argument("model_paths", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--threads", callback=_thread_list, default="1", show_default=True,
              help="Thread counts, comma-separated (e.g. 1,4): one measurement each.")
@click.option("--runs", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--warmup", type=click.IntRange(min=0), default=5, show_default=True)
@click.option("--indirect-bgemm", is_flag=True, help="Use LCE's indirect BGEMM kernels.")
@click.option("--float-baseline", is_flag=True,
              help="Also time the same architecture as a float TFLite model with XNNPACK "
                   "(needs the .keras beside the .tflite, or --keras) and show the ratios.")
@click.option("--keras", "keras_path", type=click.Path(dir_okay=False), default=None,
              help="The Keras model for --float-baseline (with a single MODEL_PATH).")
@click.option("--ssh", "ssh_target", default=None, metavar="USER@HOST",
              help="Benchmark on this board with lce_benchmark_model instead of locally.")
@click.option("--port", type=click.IntRange(1, 65535), default=22, show_default=True)
@click.option("--identity", type=click.Path(dir_okay=False), default=None,
              help="SSH private key (ssh -i).")
@click.option("--known-hosts", type=click.Path(dir_okay=False), default=None,
              help="known_hosts file to use (new host keys are accepted and recorded).")
@click.option("--ssh-option", "ssh_options", multiple=True, metavar="KEY=VALUE",
              help="Extra ssh -o option (repeatable). Note: by ssh's design, "
                   "ProxyCommand=... (and LocalCommand) runs a local command on this "
                   "machine: pass only options you would type yourself.")
@click.option("--connect-timeout", type=click.FloatRange(min=1), default=10.0,
              show_default=True, help="Seconds to wait for the SSH connection.")
@click.option("--timeout", type=click.FloatRange(min=1), default=600.0, show_default=True,
              help="Seconds allowed for each remote benchmark run.")
@click.option("--binary", default=None, metavar="PATH",
              help="The benchmark tool on the board [lce_benchmark_model on PATH].")
@click.option("--runner", type=click.Choice(["auto", "binary", "python"]), default="auto",
              show_default=True,
              help="auto: the binary, else the board-side Python runner (LCE's interpreter).")
@click.option("--python", "python", default="python3", show_default=True,
              help="The board's Python for the Python runner.")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON: one object for one measurement, else a list.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV.")
@click.option("--profile", is_flag=True,
              help="Show where the time goes: per op type and per layer, the models side "
                   "by side (on a board: lce_benchmark_model --enable_op_profiling; locally "
                   "LCE's interpreter has no profiler: op counts and MACs only).")
@click.option("--plot", type=click.Path(dir_okay=False), default=None,
              help="Write a latency-versus-accuracy plot (accuracies from run folders); "
                   "with --profile, a bar chart of the op profile.")
def bench(model_paths: tuple[str, ...], **options) -> None:
    """Latency of MODEL_PATHS (.tflite, batch size 1).

    Locally with LCE's interpreter; with --ssh on the board: each model is copied there,
    measured with lce_benchmark_model (or, failing that, deploy/lce_bench_runner.py on
    the board's Python with the LCE wheel) and the output parsed into a table.
    """
    from bnn_keras.bench.remote import RemoteOptions
    from bnn_keras.bench.spec import BenchSpec
    from bnn_keras.bench.table import known_accuracy
    from bnn_keras.export import read_flatbuffer

    _check_options(model_paths, options)
    spec = BenchSpec(threads=options["threads"], runs=options["runs"],
                     warmup=options["warmup"], use_indirect_bgemm=options["indirect_bgemm"],
                     op_profiling=options["profile"])
    sizes = {path: len(read_flatbuffer(path)) for path in model_paths}
    target = _ssh_target(options)
    if target is None:  # the interpreter runs in this process: a crash must not kill it
        from bnn_keras.bench.local import probe_in_subprocess

        for path in model_paths:
            probe_in_subprocess(path)

    with tempfile.TemporaryDirectory(prefix="bnn-keras-bench-") as tmp:
        floats = {}
        if options["float_baseline"]:
            floats = _float_baselines(model_paths, options["keras_path"], Path(tmp))
        results = None
        if target is None:
            rows = _local_rows(model_paths, sizes, floats, spec)
        else:
            remote = RemoteOptions(binary=options["binary"], python=options["python"],
                                   runner=options["runner"], timeout=options["timeout"])
            rows, results = _remote_rows(model_paths, sizes, floats, spec, target, remote)
    for row in rows:
        row.accuracy = known_accuracy(row.model)
    if options["profile"]:
        _echo_profiles(model_paths, rows, spec, _profiles(model_paths, results), options)
    else:
        _echo_rows(model_paths, rows, spec, options)


def _check_options(model_paths: tuple[str, ...], options: dict) -> None:
    """Usage errors: options that exclude each other or need another one."""
    if options["as_json"] and options["as_csv"]:
        raise click.UsageError("--json and --csv exclude each other")
    if options["profile"] and options["as_csv"]:
        raise click.UsageError("--profile prints a table or --json, not --csv")
    if options["keras_path"] and (len(model_paths) > 1 or not options["float_baseline"]):
        raise click.UsageError("--keras goes with --float-baseline and a single MODEL_PATH")
    if not options["ssh_target"]:
        for name, key in (("--binary", "binary"), ("--identity", "identity"),
                          ("--known-hosts", "known_hosts")):
            if options[key]:
                raise click.UsageError(f"{name} needs --ssh")


def _ssh_target(options: dict):
    """The board of ``--ssh`` and the SSH options, or None to benchmark locally."""
    from bnn_keras.bench.ssh import SshTarget

    if not options["ssh_target"]:
        return None
    return SshTarget.parse(options["ssh_target"], port=options["port"],
                           identity=options["identity"], known_hosts=options["known_hosts"],
                           connect_timeout=options["connect_timeout"],
                           options=list(options["ssh_options"]))


def _float_baselines(model_paths: tuple[str, ...], keras_path: str | None,
                     directory: Path) -> dict[str, Path]:
    """Each model's float baseline as a ``.tflite`` in ``directory``."""
    from bnn_keras.bench.float_baseline import disk_full, float_flatbuffer
    from bnn_keras.errors import BnnError

    floats = {}
    for i, path in enumerate(model_paths):
        flatbuffer = float_flatbuffer(_keras_beside(Path(path), keras_path))
        floats[path] = directory / f"float-{i}.tflite"
        try:
            floats[path].write_bytes(flatbuffer)
        except OSError as err:
            why = "it is full" if disk_full(err) else err.strerror or str(err)
            raise BnnError(f"cannot write the float baseline of {path} to the temporary "
                           f"folder {directory}: {why} (free some space, or point TMPDIR to "
                           "a folder with room)") from None
    return floats


def _echo_header(model_paths: tuple[str, ...], spec, options: dict) -> None:
    import platform

    arm = platform.machine().lower() in ("aarch64", "arm64")
    where = options["ssh_target"] or (
        f"this machine ({platform.machine()}, LCE interpreter"
        f"{'' if arm else '; off ARM: not board latency'})")
    click.echo(f"{len(model_paths)} model(s) on {where}: {spec.runs} runs, "
               f"{spec.warmup} warm-up, threads {','.join(map(str, spec.threads))}")


def _echo_rows(model_paths: tuple[str, ...], rows, spec, options: dict) -> None:
    """Print the rows (JSON, CSV or a table under a one-line header) and write the plot."""
    from bnn_keras.bench.table import format_table, plot_latency_accuracy, to_csv

    plot = options["plot"]
    if options["as_json"]:
        data = [row.as_dict() for row in rows]
        click.echo(json.dumps(data[0] if len(data) == 1 else data, indent=2))
    elif options["as_csv"]:
        click.echo(to_csv(rows), nl=False)
    else:
        _echo_header(model_paths, spec, options)
        click.echo(format_table(rows))
    if plot:
        if plot_latency_accuracy(rows, plot):
            if not (options["as_json"] or options["as_csv"]):
                click.echo(f"plot: {plot}")
        else:
            click.echo("warning: no accuracy known for these models (no run folder "
                       "metrics.json or .report.json beside them): no plot written", err=True)


def _local_rows(model_paths, sizes, floats, spec):
    """One row per model and thread count, measured here with LCE's interpreter."""
    from bnn_keras.bench import benchmark_flatbuffer
    from bnn_keras.bench.table import row_from_latency
    from bnn_keras.export import read_flatbuffer

    rows = []
    for path in model_paths:
        flatbuffer = read_flatbuffer(path)
        for n in spec.threads:
            latency = benchmark_flatbuffer(flatbuffer, threads=n, runs=spec.runs,
                                           warmup=spec.warmup,
                                           use_indirect_bgemm=spec.use_indirect_bgemm)
            row = row_from_latency(path, latency, size_bytes=sizes[path])
            if path in floats:
                fb = floats[path].read_bytes()
                base = benchmark_flatbuffer(fb, threads=n, runs=spec.runs, warmup=spec.warmup,
                                            use_xnnpack=True)
                row.float_avg_ms, row.float_size_bytes = base.mean_ms, len(fb)
            rows.append(row)
    return rows


def _remote_rows(model_paths, sizes, floats, spec, target, remote):
    """One row per model and thread count, measured on the board ``target``."""
    from bnn_keras.bench.remote import benchmark_over_ssh
    from bnn_keras.bench.table import row_from_output

    results = benchmark_over_ssh(target, model_paths, spec, remote,
                                 float_models={str(k): v for k, v in floats.items()})
    rows = []
    for result in results:
        row = row_from_output(result.model, target.destination, result.runner, result.threads,
                              result.output, size_bytes=sizes[result.model])
        if result.float_output is not None:
            row.float_avg_ms = result.float_output.inference_avg_us * 1e-3
            row.float_size_bytes = floats[result.model].stat().st_size
        rows.append(row)
    return rows, results


def _profiles(model_paths: tuple[str, ...], results) -> list:
    """The op profile of each board run (its MACs added from the flatbuffer), or of each
    model from its flatbuffer alone where no profile could be measured."""
    from bnn_keras.bench import op_costs
    from bnn_keras.export import read_flatbuffer

    if results is None:
        return [op_costs.flatbuffer_profile(read_flatbuffer(p), str(p), op_costs.NO_LOCAL_TIMES)
                for p in model_paths]
    profiles, static = [], set()
    for result in results:
        if result.op_profile is not None:
            op_costs.add_macs(result.op_profile, read_flatbuffer(result.model))
            profiles.append(result.op_profile)
        elif result.model not in static:  # the same for every thread count
            static.add(result.model)
            profiles.append(op_costs.flatbuffer_profile(
                read_flatbuffer(result.model), result.model, op_costs.NO_RUNNER_TIMES))
    return profiles


def _echo_profiles(model_paths: tuple[str, ...], rows, spec, profiles, options: dict) -> None:
    """Print the latency rows and the op profiles (a table or JSON); write their chart."""
    from bnn_keras.bench.profile_report import format_profiles, plot_profiles
    from bnn_keras.bench.table import format_table

    if options["as_json"]:
        click.echo(json.dumps({"runs": [r.as_dict() for r in rows],
                               "profiles": [p.as_dict() for p in profiles]}, indent=2))
    else:
        _echo_header(model_paths, spec, options)
        click.echo(format_table(rows) + "\n")
        click.echo(format_profiles(profiles))
    if options["plot"]:
        plot_profiles(profiles, options["plot"])
        if not options["as_json"]:
            click.echo(f"plot: {options['plot']}")
