"""Top-1 / top-5 of a ``.keras`` model or an LCE ``.tflite`` flatbuffer on a dataset split."""

from __future__ import annotations

import numpy as np

from bnn_keras.data import check_input_shape
from bnn_keras.export import predict_tflite
from bnn_keras.insight.sources import load_split, resolve


def topk_accuracy(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Share of rows whose label is among the ``k`` largest logits (ties broken by class
    index)."""
    k = min(k, logits.shape[-1])
    top = np.argsort(-logits, axis=-1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=-1)))


def evaluate(target: str, dataset: str | None = None, split: str = "test",
             limit: int | None = None) -> dict:
    """Evaluate a run folder, ``.keras`` or ``.tflite`` file on ``dataset``/``split``.

    The dataset defaults to the run's own (digits for bare files). ``model_classes`` and
    ``dataset_classes`` say whether the two agree (see :func:`class_count_warning`).

    Example:
        ```python
        evaluate("runs/reactnet_18-bf-digits")  # {'top1': ..., 'top5': ..., ...}
        ```
    """
    source = resolve(target)
    dataset = dataset or source.dataset or "digits"
    images, labels, data_shape, classes = load_split(dataset, split, limit)
    if source.kind == "keras":
        from bnn_keras.keras_files import load_keras_model

        model = load_keras_model(source.path)
        check_input_shape(model.input_shape[1:], data_shape, source.path.name, dataset)
        logits = model.predict(images, batch_size=128, verbose=0)
    else:
        from bnn_keras.bench.local import probe_in_subprocess
        from bnn_keras.export import lce_interpreter, read_flatbuffer

        flatbuffer = read_flatbuffer(source.path)
        probe_in_subprocess(source.path)  # a crash there is an error here, not a segfault
        shape = lce_interpreter(flatbuffer).input_shapes[0][1:]
        check_input_shape(shape, data_shape, source.path.name, dataset)
        logits = predict_tflite(flatbuffer, images)
    logits = logits.reshape(len(images), -1)
    return {
        "model": str(source.path), "format": source.kind, "dataset": dataset, "split": split,
        "samples": int(len(labels)), "top1": topk_accuracy(logits, labels, 1),
        "top5": topk_accuracy(logits, labels, 5),
        "model_classes": int(logits.shape[-1]), "dataset_classes": classes,
    }


def class_count_warning(result: dict) -> str | None:
    """A warning when the model's outputs and the dataset's classes differ in number (the
    accuracies then compare class indices that may mean different things)."""
    if result["model_classes"] == result["dataset_classes"]:
        return None
    return (f"the model has {result['model_classes']} classes but {result['dataset']} has "
            f"{result['dataset_classes']} classes: its top-1/top-5 compare class indices "
            "that may not mean the same classes")
