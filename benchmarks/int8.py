"""int8 + 1-bit against float32 + 1-bit: flatbuffer sizes at 224x224, and a digits run's
quantization-aware fine-tuning against post-training calibration.

``sizes``: for reactnet_18 bf, bnext_tiny bn and reactnet_a bf at 224x224x3 and 1000
classes (untrained, shifts moved off zero as in a trained net), the float32 ``.tflite``
and the int8 one (ranges calibrated on two random images; sizes do not depend on them),
their ratio against the target (0.55x, 0.55x, 0.65x), and the int8 checks.

``digits``: a float run and its ``--quantize int8`` fine-tuning (run folders): test top-1
of the float Keras model, of the QAT Keras model and of its int8 ``.tflite``, the
``.tflite``'s top-1 agreement with the QAT model (target >= 99%), and post-training
calibration of the float model (8 batches of train images) beside it.

    python benchmarks/int8.py sizes
    python benchmarks/int8.py digits --float-run runs/int8/reactnet_18-bf-digits \\
        --int8-run runs/int8/reactnet_18-bf-digits-int8
"""

from __future__ import annotations

import argparse
import warnings

import bnn_keras  # noqa: F401  (Keras 2 before TensorFlow)

SIZE_CASES = (("reactnet_18", "bf", 0.55), ("bnext_tiny", "bn", 0.55),
              ("reactnet_a", "bf", 0.65))


def _sizes() -> None:
    import numpy as np

    from bnn_keras import export, models
    from bnn_keras.export.int8 import int8_findings
    from bnn_keras.quantize import calibrate_ranges, quantize_model

    print("| model | variant | float32 .tflite bytes | int8 .tflite bytes | int8 / float "
          "| target | LceBconv2d / binary convs | int8 checks |")
    print("|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for name, variant, target in SIZE_CASES:
        net = models.create(name, variant, 1000, (224, 224, 3))
        images = rng.standard_normal((2, 224, 224, 3)).astype(np.float32)
        export.calibrate_batchnorm(net, images)
        export.perturb_shifts(net, rng)
        float_bytes = len(export.convert(net))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the +1 padding note
            qat = quantize_model(net)
        calibrate_ranges(qat, [images])
        flatbuffer = export.convert(qat)
        counts = export.op_counts(flatbuffer)
        findings = int8_findings(flatbuffer)
        checks = "pass" if all(f.ok for f in findings) else "; ".join(
            f.detail for f in findings if not f.ok)
        ratio = len(flatbuffer) / float_bytes
        print(f"| {name} | {variant} | {float_bytes:,} | {len(flatbuffer):,} | {ratio:.3f} | "
              f"<= {target} {'met' if ratio <= target else 'MISSED'} | "
              f"{counts.get('LceBconv2d', 0)} / {len(export.binary_conv_layers(net))} | "
              f"{checks} |", flush=True)


def _top1(predict, x, y) -> tuple[float, object]:
    import numpy as np

    top1 = np.argmax(predict(x).reshape(len(x), -1), -1)
    return float(np.mean(top1 == y)), top1


def _digits(float_run: str, int8_run: str) -> None:
    import numpy as np

    from bnn_keras import data, export
    from bnn_keras.io import load_keras_model
    from bnn_keras.quantize.ptq import post_training_int8

    x, y = data.load("digits").arrays("test")
    float_net = load_keras_model(f"{float_run}/model.keras")
    qat_net = load_keras_model(f"{int8_run}/model.keras")

    def keras_predict(model):
        return lambda inputs: model.predict(inputs, batch_size=64, verbose=0)

    def tflite_predict(flatbuffer):
        return lambda inputs: export.predict_tflite(flatbuffer, inputs)

    float_acc, _ = _top1(keras_predict(float_net), x, y)
    qat_acc, qat_top1 = _top1(keras_predict(qat_net), x, y)
    int8_acc, int8_top1 = _top1(tflite_predict(export.convert(qat_net)), x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ptq_net, images = post_training_int8(float_net, "digits", batches=8)
    ptq_keras, _ = _top1(keras_predict(ptq_net), x, y)
    ptq_acc, _ = _top1(tflite_predict(export.convert(ptq_net)), x, y)
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("sizes", "digits"))
    p.add_argument("--float-run")
    p.add_argument("--int8-run")
    args = p.parse_args()
    if args.what == "sizes":
        _sizes()
    else:
        if not (args.float_run and args.int8_run):
            p.error("digits needs --float-run and --int8-run")
        _digits(args.float_run, args.int8_run)


if __name__ == "__main__":
    main()
