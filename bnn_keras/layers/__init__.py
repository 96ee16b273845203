"""Keras layers for binary networks: weight-standardised convs, ReActNet's activations,
BNext's Info-Recoupling pieces, the PyTorch-aligned ``Rotate180`` and the initializers
bnn_keras saves."""

from bnn_keras.layers.activations import LearnableBias, RPReLU
from bnn_keras.layers.bnext_layers import ChannelGate, RecouplingMix, UnitIntervalClip
from bnn_keras.layers.geometry import Rotate180
from bnn_keras.layers.initializers import BinomialBlur
from bnn_keras.layers.ws_conv import ScaledStdConv2D, ScaledStdQuantConv2D

__all__ = ["LearnableBias", "RPReLU", "ScaledStdConv2D", "ScaledStdQuantConv2D"]
__all__ += ["BinomialBlur", "ChannelGate", "RecouplingMix", "Rotate180", "UnitIntervalClip"]
