"""A 2-D convolution whose bfloat16 weight gradient on small feature maps is one matmul.

oneDNN's bfloat16 weight gradient (``Conv2DBackpropFilter``) is slow where the output
feature map is small and the channels many: on an AMX Xeon, a 3x3 conv 512 -> 512 at
4x4 pixels, batch 64, took 5x the time of the same product written as a matmul of the
input's patches, and more than its float32 counterpart (zoo/results.md, "Mixed-precision
training step"). Those are the last stages of every ResNet-style BNN at CIFAR sizes and
the last one at ImageNet sizes.
"""

from __future__ import annotations

import tensorflow as tf

#: output feature maps of at most this many pixels get the matmul weight gradient
#: (measured faster on 8x8 and 4x4 maps, slower on 16x16 ones)
MATMUL_MAX_PIXELS = 64


def _use_matmul(x: tf.Tensor, dy: tf.Tensor) -> bool:
    """bfloat16 on a CPU (GPUs' kernels have no such gap) and a small, static map."""
    static = None not in (*x.shape[1:], *dy.shape[1:])
    return (static and dy.dtype == tf.bfloat16 and dy.shape[1] * dy.shape[2] <= MATMUL_MAX_PIXELS
            and not tf.config.list_physical_devices("GPU"))


def patches(x: tf.Tensor, kernel_size: int, strides: int, out_hw: tuple[int, int],
            padding: str) -> tf.Tensor:
    """``(N * Ho * Wo, k * k * C)``: every output pixel's input window, flattened in the
    kernel's ``(kh, kw, C)`` order; ``padding`` ``"SAME"`` pads as TensorFlow's does."""
    k, (ho, wo) = kernel_size, out_hw
    if padding == "SAME":
        pads = []
        for size, out in zip(x.shape[1:3], out_hw):
            total = max((out - 1) * strides + k - size, 0)
            pads.append([total // 2, total - total // 2])
        x = tf.pad(x, [[0, 0], *pads, [0, 0]])
    if strides == 1:  # k * k shifted views: cheaper than extract_patches at stride 1
        p = tf.concat([x[:, i:i + ho, j:j + wo, :] for i in range(k) for j in range(k)], -1)
    else:
        p = tf.image.extract_patches(x, [1, k, k, 1], [1, strides, strides, 1],
                                     [1, 1, 1, 1], "VALID")
    return tf.reshape(p, [-1, k * k * int(x.shape[-1])])


def conv2d(x: tf.Tensor, kernel: tf.Tensor, strides: int, padding: str) -> tf.Tensor:
    r"""``tf.nn.conv2d(x, kernel, strides, padding)`` (NHWC, square kernel, no dilation):
    the same forward op and input gradient; the weight gradient, where
    :func:`_use_matmul` holds, is

    \[
    \frac{\partial L}{\partial W} = P^\top \, \frac{\partial L}{\partial Y}, \qquad
    P = \text{patches}(x) \in \mathbb{R}^{N H_o W_o \times k^2 C}
    \]

    the same sum as ``Conv2DBackpropFilter``'s in another order (bfloat16 products,
    float32 accumulation in both); elsewhere it is ``Conv2DBackpropFilter`` itself.
    """
    k = int(kernel.shape[0])
    strides_4 = [1, strides, strides, 1]

    @tf.custom_gradient
    def forward(x, kernel):
        def grad(dy):
            dx = tf.raw_ops.Conv2DBackpropInput(input_sizes=tf.shape(x), filter=kernel,
                                                out_backprop=dy, strides=strides_4,
                                                padding=padding)
            if _use_matmul(x, dy):
                p = patches(x, k, strides, (dy.shape[1], dy.shape[2]), padding)
                dw = tf.reshape(tf.matmul(p, tf.reshape(dy, [-1, dy.shape[-1]]),
                                          transpose_a=True), tf.shape(kernel))
            else:
                dw = tf.raw_ops.Conv2DBackpropFilter(input=x, filter_sizes=tf.shape(kernel),
                                                     out_backprop=dy, strides=strides_4,
                                                     padding=padding)
            return dx, dw

        return tf.nn.conv2d(x, kernel, strides_4, padding), grad

    return forward(x, kernel)
