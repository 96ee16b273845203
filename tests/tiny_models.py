"""A model module for ``$BNN_KERAS_MODELS``: a two-block ReActNet (the layer types of
reactnet_18) that keeps the command-line tests fast."""

from dataclasses import replace

from bnn_keras import models
from bnn_keras.models.common import VARIANTS_BN_BF_NONE
from bnn_keras.models.reactnet_resnet import ReActNetResNetOptions, build_reactnet_resnet

NAME = "tiny_reactnet"

if NAME not in models.names():
    @models.register(NAME, variants=VARIANTS_BN_BF_NONE, family="test",
                     options=ReActNetResNetOptions)
    def tiny_reactnet(variant, num_classes, input_shape, options):
        return build_reactnet_resnet((1, 1), replace(options, widths=(8, 16)),
                                     variant=variant, num_classes=num_classes,
                                     input_shape=input_shape, name="tiny")
