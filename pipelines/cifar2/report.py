"""cifar2's part of the run report: the example predictions as images."""

from __future__ import annotations

import numpy as np

from core import html_report
from pipelines.cifar2.features import IMAGE_KEY


def examples_html(examples, predicted, label_key: str) -> str:
    import tensorflow as tf

    plt = html_report.pyplot()
    fig, axes = plt.subplots(1, len(examples), figsize=(1.6 * len(examples), 2.2))
    for ax, example, p in zip(np.atleast_1d(axes), examples, predicted):
        ax.imshow(tf.io.decode_image(html_report.feature_value(example, IMAGE_KEY), channels=3).numpy())
        ax.set_title(f"label {html_report.feature_value(example, label_key)}\nP(auto) {float(p[0]):.2f}", fontsize=8)
        ax.axis("off")
    return html_report.png(fig)
