"""Probe: the 15×15×1024 convolution as an FFT product, against kerasdec's row-GEMM form (issue 12).

An FFT convolution multiplies ~25-45× fewer numbers than the direct one at a 16×16 or 32×32 map, but
the kernel's spectrum (64·1024 two-dimensional FFTs, recomputed whenever the weights change, i.e. every
training step) and the transposes around it cost more than the whole row-GEMM convolution here.
Measured with this script on the quiet 2-core development machine (ms, median of 10):

    map    batch  row-GEMM fwd  FFT fwd  row-GEMM fwd+bwd  FFT fwd+bwd   (max rel. diff 3.7e-6)
    16×16  1      32            384      102               1113
    16×16  2      49            329      156               1020
    32×32  1      112           666      378               2204
    32×32  2      220           704      624               2227

    python benchmarks/fft_conv_probe.py
"""

import time

import numpy as np
import tensorflow as tf

from kerasdec.models.rowconv import row_gemm_conv2d


def fft_conv(x: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """``tf.nn.conv2d(x, kernel, 1, "SAME")`` for an odd k×k kernel, via rfft2d on a padded grid."""
    _, height, width, channels = x.shape
    k, outputs = kernel.shape[0], kernel.shape[-1]
    p = k // 2
    n1, n2 = height + p + (height + p) % 2, width + p + (width + p) % 2  # no wrap-around into the output
    spectrum_x = tf.signal.rfft2d(tf.transpose(x, (0, 3, 1, 2)), fft_length=[n1, n2])  # (B, C, n1, f2)
    flipped = tf.transpose(kernel, (2, 3, 0, 1))[:, :, ::-1, ::-1]  # correlation → convolution
    placed = tf.roll(tf.pad(flipped, [[0, 0], [0, 0], [0, n1 - k], [0, n2 - k]]), [-p, -p], [2, 3])
    spectrum_w = tf.signal.rfft2d(placed)  # (C, O, n1, f2)
    bins = n1 * (n2 // 2 + 1)
    xm = tf.transpose(tf.reshape(spectrum_x, (-1, channels, bins)), (2, 0, 1))  # (F, B, C)
    wm = tf.transpose(tf.reshape(spectrum_w, (channels, outputs, bins)), (2, 0, 1))  # (F, C, O)
    ym = tf.reshape(tf.transpose(tf.matmul(xm, wm), (1, 2, 0)), (-1, outputs, n1, n2 // 2 + 1))
    y = tf.signal.irfft2d(ym, fft_length=[n1, n2])[:, :, :height, :width]
    return tf.transpose(y, (0, 2, 3, 1))


def median_ms(f, n: int = 10) -> float:
    """Median milliseconds of ``f()`` over n calls after two warm-up calls."""
    f()
    f()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1000


def main() -> None:
    for side, batch in [(16, 1), (16, 2), (32, 1), (32, 2)]:
        x = tf.random.normal((batch, side, side, 64))
        w = tf.Variable(tf.random.normal((15, 15, 64, 1024)) * 0.01)
        ref = tf.nn.conv2d(x, w, 1, "SAME")
        diff = float(tf.reduce_max(tf.abs(fft_conv(x, w) - ref)) / tf.reduce_max(tf.abs(ref)))
        print(f"{side}x{side} batch {batch}: max rel. diff {diff:.1e}")
        for name, op in [("row-GEMM", row_gemm_conv2d), ("FFT", fft_conv)]:
            forward = tf.function(lambda op=op: op(x, w))

            @tf.function
            def both(op=op):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    y = op(x, w)
                    loss = tf.reduce_sum(y * y)
                return tape.gradient(loss, [x, w])

            print(f"  {name}: fwd {median_ms(forward):.1f} ms, fwd+bwd {median_ms(both):.1f} ms", flush=True)


if __name__ == "__main__":
    main()
