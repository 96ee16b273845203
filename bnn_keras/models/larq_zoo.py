"""larq-zoo baselines, untrained: ``lqz_quicknet_small``, ``lqz_quicknet``,
``lqz_quicknet_large`` and ``lqz_birealnet``.

Built with larq-zoo's own model functions (``weights=None``, ``include_top=False``, the
requested ``input_shape``), so the body is exactly larq-zoo's. larq-zoo's top ends in a
softmax; the registry's convention is logits from a ``Dense`` named ``classifier``, so
the top is rebuilt as larq-zoo builds it minus the softmax: QuickNet's ReLU, a global
average pool and a float ``Dense`` (larq-zoo uses a ``QuantDense`` without quantizers
for QuickNet, which is the same float layer). Only the ``bn`` variant exists.

larq-zoo's BiRealNet pads its binary 3x3 convs with zeros (``padding="same"``,
``pad_values=0``), which LCE computes with its padding correction; QuickNet pads with +1.
``binary_pad=1.0`` rebuilds every zero-padded binary "same" conv with +1 padding (the
same shapes, so larq-zoo weights still load, but +1 instead of 0 at the borders); the
default keeps larq-zoo's own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import tf_keras as keras

from bnn_keras.errors import BnnError
from bnn_keras.layers import BinomialBlur
from bnn_keras.models.common import classifier_head
from bnn_keras.models.registry import ModelOptions, register
from bnn_keras.quantizers import is_binarizing

VARIANTS = ("bn",)


def _zoo_function(name: str) -> Callable[..., keras.Model]:
    import larq_zoo

    return {
        "quicknet_small": larq_zoo.sota.QuickNetSmall,
        "quicknet": larq_zoo.sota.QuickNet,
        "quicknet_large": larq_zoo.sota.QuickNetLarge,
        "birealnet": larq_zoo.literature.BiRealNet,
    }[name]


@dataclass(frozen=True)
class LarqZooOptions(ModelOptions):
    """What a larq-zoo network can vary here: ``binary_pad``, ``None`` (larq-zoo's
    padding) or ``1.0`` (+1 padding on every zero-padded binary conv)."""

    binary_pad: float | None = None

    def check(self, variant: str) -> None:
        super().check(variant)
        if self.binary_pad not in (None, 1.0):
            raise BnnError(f"binary_pad must be None (larq-zoo's own) or 1, "
                           f"got {self.binary_pad!r}")


def build_larq_zoo(zoo_name: str, options: LarqZooOptions = LarqZooOptions(), *,
                   num_classes: int, input_shape: tuple[int, int, int],
                   relu_top: bool) -> keras.Model:
    """larq-zoo's ``zoo_name`` body with a logits head.

    Args:
        zoo_name: ``"quicknet_small"``, ``"quicknet"``, ``"quicknet_large"`` or
            ``"birealnet"``.
        options: what the network varies (:class:`LarqZooOptions`).
        num_classes: classifier outputs (logits).
        input_shape: ``(height, width, channels)``.
        relu_top: apply a ReLU before the pool, as larq-zoo's QuickNet top does.
    """
    options.check("bn")
    body = _zoo_function(zoo_name)(input_shape=tuple(input_shape), weights=None,
                                   include_top=False)
    if options.binary_pad == 1.0:
        body = _pad_binary_convs_with_one(body)
    for layer in body.layers:  # the same kernel, saved as bnn_keras's own initializer
        if getattr(getattr(layer, "depthwise_initializer", None), "__name__",
                   None) == "blurpool_initializer":
            layer.depthwise_initializer = BinomialBlur()
    x = body.output
    if relu_top:
        x = keras.layers.ReLU(name="top_relu")(x)
    outputs = classifier_head(x, num_classes)
    return keras.Model(body.input, outputs, name=f"lqz_{zoo_name}_bn")


def _pad_binary_convs_with_one(model: keras.Model) -> keras.Model:
    """``model`` rebuilt with ``pad_values=1.0`` on its zero-padded binary "same" convs."""

    def zero_padded(layer: keras.layers.Layer) -> bool:
        return (isinstance(layer, keras.layers.Conv2D) and layer.padding == "same"
                and getattr(layer, "pad_values", None) == 0.0 and is_binarizing(layer)
                and layer.kernel_size != (1, 1))

    if not any(zero_padded(layer) for layer in model.layers):
        return model

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        config = layer.get_config()
        if zero_padded(layer):
            config["pad_values"] = 1.0
        return layer.__class__.from_config(config)

    return keras.models.clone_model(model, clone_function=clone)


def _register(zoo_name: str, paper: str, relu_top: bool) -> None:
    model_name = f"lqz_{zoo_name}"

    @register(model_name, variants=VARIANTS, family="larq_zoo", paper=paper,
              options=LarqZooOptions)
    def builder(variant: str, num_classes: int, input_shape: tuple[int, int, int],
                options: LarqZooOptions) -> keras.Model:
        return build_larq_zoo(zoo_name, options, num_classes=num_classes,
                              input_shape=input_shape, relu_top=relu_top)

    builder.__name__ = model_name
    builder.__doc__ = f"larq-zoo's {zoo_name} (weights=None) with a logits head."


_register("quicknet_small", "QuickNetSmall (larq-zoo 2.x, Bannink et al. 2021)", True)
_register("quicknet", "QuickNet (larq-zoo 2.x, Bannink et al. 2021)", True)
_register("quicknet_large", "QuickNetLarge (larq-zoo 2.x, Bannink et al. 2021)", True)
_register("birealnet", "Bi-Real Net 18 as implemented in larq-zoo (Liu et al., ECCV 2018)",
          False)
