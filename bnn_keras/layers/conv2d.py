"""A 2-D convolution whose bfloat16 weight gradient on small feature maps is one matmul.

oneDNN's bfloat16 weight gradient (``Conv2DBackpropFilter``) is slow where the output
feature map is small and the channels many: on an AMX Xeon, a 3x3 conv 512 -> 512 at
4x4 pixels, batch 64, took 5x the time of the same product written as matmuls of the
input's windows, and more than its float32 counterpart (zoo/results.md, "Mixed-precision
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


def matmul_weight_gradient(x: tf.Tensor, dy: tf.Tensor, kernel_size: int, strides: int,
                           padding: str) -> tf.Tensor:
    r"""``Conv2DBackpropFilter(x, dy)`` as matmuls of the input's windows with ``dy``:

    \[
    \frac{\partial L}{\partial W_{ij}} = X_{ij}^\top \, \frac{\partial L}{\partial Y}
    \]

    with \(X_{ij}\) the ``(N Ho Wo, C)`` view of the input (padded as TensorFlow's
    ``"SAME"`` pads) that kernel tap ``(i, j)`` sees. At stride 1 each tap is a slice and
    its own matmul, so no ``k * k``-fold copy of the input is built; at larger strides,
    where strided slices are slow, one matmul of ``tf.image.extract_patches``.
    Returns ``(k, k, C, O)``.
    """
    k, s = kernel_size, strides
    ho, wo = int(dy.shape[1]), int(dy.shape[2])
    if padding == "SAME":
        pads = []
        for size, out in zip(x.shape[1:3], (ho, wo)):
            total = max((out - 1) * s + k - int(size), 0)
            pads.append([total // 2, total - total // 2])
        x = tf.pad(x, [[0, 0], *pads, [0, 0]])
    channels = int(x.shape[-1])
    dy = tf.reshape(dy, [-1, int(dy.shape[-1])])
    if s == 1:
        taps = [tf.matmul(tf.reshape(x[:, i:i + ho, j:j + wo, :], [-1, channels]), dy,
                          transpose_a=True) for i in range(k) for j in range(k)]
        return tf.reshape(tf.stack(taps), [k, k, channels, -1])
    windows = tf.image.extract_patches(x, [1, k, k, 1], [1, s, s, 1], [1, 1, 1, 1], "VALID")
    dw = tf.matmul(tf.reshape(windows, [-1, k * k * channels]), dy, transpose_a=True)
    return tf.reshape(dw, [k, k, channels, -1])


def conv2d(x: tf.Tensor, kernel: tf.Tensor, strides: int, padding: str) -> tf.Tensor:
    r"""``tf.nn.conv2d(x, kernel, strides, padding)`` (NHWC, square kernel, no dilation):
    the same forward op and input gradient; the weight gradient, where :func:`_use_matmul`
    holds, is :func:`matmul_weight_gradient`, the same sum as ``Conv2DBackpropFilter``'s
    in another order (bfloat16 products, float32 accumulation in both); elsewhere it is
    ``Conv2DBackpropFilter`` itself.
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
                dw = matmul_weight_gradient(x, dy, k, strides, padding)
            else:
                dw = tf.raw_ops.Conv2DBackpropFilter(input=x, filter_sizes=tf.shape(kernel),
                                                     out_backprop=dy, strides=strides_4,
                                                     padding=padding)
            return dx, dw

        return tf.nn.conv2d(x, kernel, strides_4, padding), grad

    return forward(x, kernel)
