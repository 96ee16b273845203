"""Names bnn_keras gives layers that other parts read back (no TensorFlow here: the op
profile's parser reads them on machines without it)."""

from __future__ import annotations

#: The suffix of the fake quantizer on a layer's output in a quantization-aware copy. A
#: converted int8 node that fuses the fake quantizer is named after it, so an op profile
#: reads the suffix off to line the node up with the float32 flatbuffer's.
FAKE_QUANT_SUFFIX = "_int8"


def fake_quant_name(layer: str) -> str:
    """The name of the fake quantizer on ``layer``'s output."""
    return layer + FAKE_QUANT_SUFFIX


def quantized_layer(name: str) -> str:
    """The layer whose output ``name`` fake-quantizes, else ``name`` itself."""
    return name.removesuffix(FAKE_QUANT_SUFFIX)
