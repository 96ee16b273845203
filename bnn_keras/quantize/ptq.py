"""Post-training int8 for users without a training budget: a float model's
quantization-aware copy with its ranges calibrated on a dataset's images, and what that
costs in top-1 (``bnn-keras export --quantize int8 --calibrate DATASET``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import tf_keras as keras

from bnn_keras.quantize.calibrate import calibrate_ranges
from bnn_keras.quantize.transform import check_quantizable, quantize_model


def calibration_batches(model: keras.Model, dataset: str, batches: int,
                        batch_size: int = 64) -> list[np.ndarray]:
    """The first ``batches`` batches of ``dataset``'s train split, images only.

    Raises:
        BnnError: one line, when the dataset is unknown or its images do not fit
            ``model``'s input.
    """
    from bnn_keras import data

    x, _ = data.load(dataset, batch_size=batch_size).arrays("train", batches * batch_size)
    data.check_input_shape(model.input_shape[1:], x.shape[1:], model.name, dataset)
    return [x[i:i + batch_size] for i in range(0, len(x), batch_size)]


@dataclass
class CalibrationCost:
    """Top-1 of the float Keras model and of the calibrated int8 flatbuffer on one split."""

    dataset: str
    split: str
    samples: int
    calibration_images: int
    float_accuracy: float
    int8_accuracy: float

    @property
    def cost(self) -> float:
        """Top-1 lost by post-training int8 (positive: worse)."""
        return self.float_accuracy - self.int8_accuracy

    def message(self) -> str:
        """The warning the export prints."""
        return (f"post-training int8 (ranges from {self.calibration_images} "
                f"{self.dataset} train images) costs {self.cost * 100:.2f} points of "
                f"{self.split} top-1 on {self.samples} images: float Keras "
                f"{self.float_accuracy:.2%}, int8 .tflite {self.int8_accuracy:.2%}; "
                "quantization-aware training loses less (bnn-keras train --quantize int8 "
                "--init-from RUN)")

    def as_dict(self) -> dict:
        """The figures as a plain dict, with ``cost``."""
        return {**asdict(self), "cost": self.cost}


@dataclass(frozen=True)
class PostTraining:
    """A post-training int8 model's origin: the float model and the images that set its
    ranges."""

    float_model: keras.Model
    dataset: str
    calibration_images: int

    def cost(self, int8_accuracy: float, x: np.ndarray, y: np.ndarray, *,
             dataset: str, split: str) -> CalibrationCost:
        """:class:`CalibrationCost` from the float model's top-1 on ``x, y`` and the
        flatbuffer's (``int8_accuracy``, measured on the same images)."""
        predicted = np.argmax(self.float_model.predict(x, batch_size=64, verbose=0), -1)
        return CalibrationCost(
            dataset=dataset, split=split, samples=len(x),
            calibration_images=self.calibration_images,
            float_accuracy=float(np.mean(predicted == np.asarray(y).ravel())),
            int8_accuracy=int8_accuracy)


def post_training_int8(model: keras.Model, dataset: str, *, batches: int = 8,
                       batch_size: int = 64) -> tuple[keras.Model, PostTraining]:
    """``model``'s quantization-aware copy with every range calibrated on ``batches``
    batches of ``dataset`` (:func:`~bnn_keras.quantize.calibrate_ranges`), and where it
    came from (what its export measures the cost against).

    Raises:
        BnnError: one line, when ``model`` has nothing to quantize or the dataset's
            images do not fit it.
    """
    check_quantizable(model)  # bad input first, before the data loads
    images = calibration_batches(model, dataset, batches, batch_size)
    qat_model = quantize_model(model)
    calibrate_ranges(qat_model, images)
    return qat_model, PostTraining(model, dataset, sum(len(b) for b in images))
