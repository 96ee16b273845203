"""int8 + 1-bit against float32 + 1-bit: flatbuffer sizes and latency at 224x224, the zoo's
int8 copies, and digits runs' quantization-aware fine-tuning against post-training
calibration.

``sizes``: for reactnet_18 bf, bnext_tiny bn and reactnet_a bf at 224x224x3 and 1000
classes (untrained, binary signs and shifts as in a trained net), the float32 ``.tflite``
and the int8 one (ranges calibrated on two random images; sizes do not depend on them),
their ratio against the target (0.55x, 0.55x, 0.65x), and the int8 checks.

``latency``: the same float32 and int8 flatbuffers of reactnet_18, reactnet_a (bf),
birealnet_18 and bnext_tiny (their default variants), timed with LCE's interpreter on
one thread, the two alternated ``--rounds`` times (``--runs`` timed runs each, who goes
first swapped every round): the median of the rounds' medians, their ratio, and the
median and range of the rounds' own ratios (a round's two timings are the closest in
time, so the least apart in load). Off ARM LCE's binary kernels are reference ones: the
ratio is for the record, not a board's.

``zoo``: every registered model and variant (``--models`` to pick; not bnext_middle and
bnext_large unless named) made the same way: float32 and int8 ``.tflite`` MB, their
ratio, ``LceBconv2d`` count and the int8 copy's ``check_deployable`` findings (the
agreement, on the two calibration images only, is shown apart).

``digits``: a float run and its ``--quantize int8`` fine-tuning (run folders): test top-1
of the float Keras model, of the QAT Keras model and of its int8 ``.tflite``, the
``.tflite``'s top-1 agreement with the QAT model (target >= 99%), and post-training
calibration of the float model (8 batches of train images) beside it.

``seeds``: the run folders ``GROUP-sSEED`` under ``--runs-dir`` (written by ``bnn-keras
train --name GROUP-sSEED``): per group, the mean and min-max over seeds of the Keras test
top-1, the exported ``.tflite``'s and its top-1 agreement (``metrics.json``); with
``--ptq GROUP``, post-training int8 of that group's runs too.

    python benchmarks/int8.py sizes
    python benchmarks/int8.py latency --rounds 3 --runs 5
    python benchmarks/int8.py zoo --models reactnet_18,bnext_tiny
    python benchmarks/int8.py digits --float-run runs/int8/reactnet_18-bf-digits \\
        --int8-run runs/int8/reactnet_18-bf-digits-int8
    python benchmarks/int8.py seeds --runs-dir runs/int8-seeds --ptq float
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import warnings
from pathlib import Path

import bnn_keras  # noqa: F401  (Keras 2 before TensorFlow)

SIZE_CASES = (("reactnet_18", "bf", 0.55), ("bnext_tiny", "bn", 0.55),
              ("reactnet_a", "bf", 0.65))
LATENCY_MODELS = ("reactnet_18", "reactnet_a", "birealnet_18", "bnext_tiny")
#: Too large to convert at 224 beside other jobs on a 2-core machine (0.5 / 1.2 GB).
ZOO_SKIPPED = ("bnext_middle", "bnext_large")


def float_and_int8(name: str, variant: str, seed: int = 0):
    """``name`` ``variant`` at 224x224x3, 1000 classes, untrained but with what a trained
    net's file holds (binary kernels' signs drawn at random, shifts moved off zero),
    BatchNorm set from two random images, and its int8 copy with the ranges calibrated on
    the same images: ``(net, qat, images, float32 flatbuffer, int8 flatbuffer)``.

    The signs: the official initialisation (``rand * 1e-3``) makes an untrained ``bn`` or
    ``none`` net's binary kernels all +1, which the converter stores once per shape."""
    import numpy as np
    import tf_keras as keras

    from bnn_keras import export, models
    from bnn_keras.quantize import calibrate_ranges, quantize_model
    from bnn_keras.quantizers import has_binary_kernel

    keras.backend.clear_session()  # the previous model's graph state
    rng = np.random.default_rng(seed)
    net = models.create(name, variant, 1000, (224, 224, 3))
    for layer in net.submodules:
        if has_binary_kernel(layer):
            kernel = layer.kernel.numpy()
            layer.kernel.assign(kernel * rng.choice(np.float32([-1, 1]), kernel.shape))
    images = rng.standard_normal((2, 224, 224, 3)).astype(np.float32)
    export.calibrate_batchnorm(net, images)
    export.perturb_shifts(net, rng)
    float_flatbuffer = export.convert(net)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the +1 padding note
        qat = quantize_model(net)
    calibrate_ranges(qat, [images])
    return net, qat, images, float_flatbuffer, export.convert(qat)


def _failing(findings) -> str:
    return "; ".join(f"{f.check}: {f.detail}" for f in findings if not f.ok) or "pass"


def _sizes() -> None:
    from bnn_keras import export
    from bnn_keras.export.int8 import int8_findings

    print("| model | variant | float32 .tflite bytes | int8 .tflite bytes | int8 / float "
          "| target | LceBconv2d / binary convs | int8 checks |")
    print("|---|---|---|---|---|---|---|---|")
    for name, variant, target in SIZE_CASES:
        net, _, _, float_flatbuffer, flatbuffer = float_and_int8(name, variant)
        counts = export.op_counts(flatbuffer)
        ratio = len(flatbuffer) / len(float_flatbuffer)
        print(f"| {name} | {variant} | {len(float_flatbuffer):,} | {len(flatbuffer):,} | "
              f"{ratio:.3f} | <= {target} {'met' if ratio <= target else 'MISSED'} | "
              f"{counts.get('LceBconv2d', 0)} / {len(export.binary_conv_layers(net))} | "
              f"{_failing(int8_findings(flatbuffer))} |", flush=True)


def _latency(rounds: int, runs: int) -> None:
    from bnn_keras import models
    from bnn_keras.bench.local import benchmark_flatbuffer

    print("| model | variant | float32 ms | int8 ms | int8 / float | per-round int8 / float: "
          "median (min-max) |")
    print("|---|---|---|---|---|---|")
    for name in LATENCY_MODELS:
        variant = models.get(name).default_variant
        *_, float_flatbuffer, int8_flatbuffer = float_and_int8(name, variant)
        times = {"float32": [], "int8": []}
        for r in range(rounds):  # alternate, and swap who goes first every round
            order = ("float32", "int8") if r % 2 == 0 else ("int8", "float32")
            for kind in order:
                flatbuffer = float_flatbuffer if kind == "float32" else int8_flatbuffer
                times[kind].append(benchmark_flatbuffer(flatbuffer, threads=1, runs=runs,
                                                        warmup=1).median_ms)
        f_ms, q_ms = (statistics.median(times[k]) for k in ("float32", "int8"))
        ratios = [q / f for f, q in zip(times["float32"], times["int8"])]
        print(f"| {name} | {variant} | {f_ms:.1f} | {q_ms:.1f} | {q_ms / f_ms:.2f} | "
              f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) |",
              flush=True)


def _zoo(names: list[str]) -> None:
    from bnn_keras import export, models

    print("| model | variant | float32 MB | int8 MB | int8 / float | LceBconv2d / binary "
          "convs | int8 checks | top-1 agreement (2 random images) |")
    print("|---|---|---|---|---|---|---|---|")
    for name in names or [n for n in models.names() if n not in ZOO_SKIPPED]:
        for variant in models.get(name).variants:
            net, qat, images, float_flatbuffer, flatbuffer = float_and_int8(name, variant)
            result = export.check_deployable(qat, flatbuffer, images, trace=False)
            checks = [f for f in result.findings if f.check != "agreement"]
            agree = result.agreement
            print(f"| {name} | {variant} | {len(float_flatbuffer) / 2**20:.2f} | "
                  f"{len(flatbuffer) / 2**20:.2f} | "
                  f"{len(flatbuffer) / len(float_flatbuffer):.3f} | "
                  f"{export.op_counts(flatbuffer).get('LceBconv2d', 0)} / "
                  f"{len(export.binary_conv_layers(net))} | {_failing(checks)} | "
                  f"{round(agree.top1_agreement * agree.samples)}/{agree.samples} |",
                  flush=True)


def _top1(predict, x, y) -> tuple[float, object]:
    import numpy as np

    top1 = np.argmax(predict(x).reshape(len(x), -1), -1)
    return float(np.mean(top1 == y)), top1


def _keras_predict(model):
    return lambda inputs: model.predict(inputs, batch_size=64, verbose=0)


def _tflite_predict(flatbuffer):
    from bnn_keras import export

    return lambda inputs: export.predict_tflite(flatbuffer, inputs)


def _ptq(float_net, x, y) -> tuple[float, float, float, int]:
    """Post-training int8 of ``float_net`` (8 batches of digits train images): test top-1
    of its Keras copy and of its ``.tflite``, their top-1 agreement, and the calibration
    images' count."""
    import numpy as np

    from bnn_keras import export
    from bnn_keras.quantize.ptq import post_training_int8

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ptq_net, origin = post_training_int8(float_net, "digits", batches=8)
    keras_acc, keras_top1 = _top1(_keras_predict(ptq_net), x, y)
    tflite_acc, tflite_top1 = _top1(_tflite_predict(export.convert(ptq_net)), x, y)
    return (keras_acc, tflite_acc, float(np.mean(keras_top1 == tflite_top1)),
            origin.calibration_images)


def _digits(float_run: str, int8_run: str) -> None:
    import numpy as np

    from bnn_keras import data, export
    from bnn_keras.keras_files import load_keras_model

    x, y = data.load("digits").arrays("test")
    float_net = load_keras_model(f"{float_run}/model.keras")
    qat_net = load_keras_model(f"{int8_run}/model.keras")
    float_acc, _ = _top1(_keras_predict(float_net), x, y)
    qat_acc, qat_top1 = _top1(_keras_predict(qat_net), x, y)
    int8_acc, int8_top1 = _top1(_tflite_predict(export.convert(qat_net)), x, y)
    ptq_keras, ptq_acc, _, images = _ptq(float_net, x, y)
    rows = [("float32 Keras (the float run)", float_acc),
            ("QAT Keras (the --quantize int8 run)", qat_acc),
            ("QAT int8 .tflite (LCE interpreter)", int8_acc),
            (f"post-training int8 Keras ({images} calibration images)", ptq_keras),
            ("post-training int8 .tflite", ptq_acc)]
    print(f"| digits test split ({len(x)} images) | top-1 |")
    print("|---|---|")
    for label, value in rows:
        print(f"| {label} | {value:.2%} |")
    agreement = float(np.mean(qat_top1 == int8_top1))
    print(f"| int8 .tflite vs QAT Keras, top-1 agreement (target >= 99%) | {agreement:.2%} |")


def _spread(values: list[float]) -> str:
    return f"{statistics.mean(values):.2%} ({min(values):.2%}-{max(values):.2%})"


def _seed_row(label: str, keras: list[float], tflite: list[float],
              agreement: list[float]) -> None:
    per_seed = " / ".join(f"{v:.2%}" for v in keras)
    print(f"| {label} | {_spread(keras)} | {per_seed} | {_spread(tflite)} | "
          f"{_spread(agreement)} |", flush=True)


def _seeds(runs_dir: str, ptq_group: str) -> None:
    groups: dict[str, dict[int, dict]] = {}
    for metrics in sorted(Path(runs_dir).glob("*-s*/metrics.json")):
        match = re.fullmatch(r"(.+)-s(\d+)", metrics.parent.name)
        if match:
            groups.setdefault(match[1], {})[int(match[2])] = json.loads(metrics.read_text())
    print("| runs | Keras test top-1, mean (min-max) | per seed | .tflite test top-1 "
          "| .tflite vs Keras top-1 agreement |")
    print("|---|---|---|---|---|")
    labels = {}
    for group, by_seed in groups.items():
        labels[group] = f"{group}-s{{{','.join(map(str, sorted(by_seed)))}}}"
        runs = [by_seed[s] for s in sorted(by_seed)]
        exported = [r.get("export") or {} for r in runs]
        _seed_row(labels[group], [r["test_accuracy"] for r in runs],
                  [e.get("tflite_test_accuracy", float("nan")) for e in exported],
                  [e.get("top1_agreement_test_split", float("nan")) for e in exported])
    if ptq_group in groups:
        from bnn_keras import data
        from bnn_keras.keras_files import load_keras_model

        x, y = data.load("digits").arrays("test")
        results = [_ptq(load_keras_model(f"{runs_dir}/{ptq_group}-s{s}/model.keras"), x, y)
                   for s in sorted(groups[ptq_group])]
        _seed_row(f"{labels[ptq_group]}, post-training int8 ({results[0][3]} images)",
                  *([r[i] for r in results] for i in range(3)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("sizes", "latency", "zoo", "digits", "seeds"))
    p.add_argument("--float-run")
    p.add_argument("--int8-run")
    p.add_argument("--rounds", type=int, default=3, help="latency: float/int8 alternations")
    p.add_argument("--runs", type=int, default=5, help="latency: timed runs per round")
    p.add_argument("--models", default="", help="zoo: comma-separated model names")
    p.add_argument("--runs-dir", help="seeds: the folder holding GROUP-sSEED run folders")
    p.add_argument("--ptq", default="", help="seeds: the group to calibrate post-training")
    args = p.parse_args()
    if args.what == "sizes":
        _sizes()
    elif args.what == "latency":
        _latency(args.rounds, args.runs)
    elif args.what == "zoo":
        _zoo([n for n in args.models.split(",") if n])
    elif args.what == "seeds":
        if not args.runs_dir:
            p.error("seeds needs --runs-dir")
        _seeds(args.runs_dir, args.ptq)
    else:
        if not (args.float_run and args.int8_run):
            p.error("digits needs --float-run and --int8-run")
        _digits(args.float_run, args.int8_run)


if __name__ == "__main__":
    main()
