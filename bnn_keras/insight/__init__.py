"""Insight: evaluation, loss landscapes and per-layer statistics of trained runs."""

from bnn_keras.insight.evaluate import evaluate, topk_accuracy
from bnn_keras.insight.inspection import block_activation_std, layer_stats
from bnn_keras.insight.landscape import (
    Landscape,
    filter_normalized_direction,
    loss_landscape,
    plot_landscapes,
)

__all__ = ["Landscape", "block_activation_std", "evaluate", "filter_normalized_direction",
           "layer_stats", "loss_landscape", "plot_landscapes", "topk_accuracy"]
