"""Confusion matrices: counts, a text table, and a labelled PNG (report, TensorBoard).

The PNG has axis titles, class-name tick labels and the count in every cell; it
needs matplotlib (``pip install 'mmkeras[plot]'``). Without it, TensorBoard gets
an unlabelled heat map (:func:`render_confusion_matrix`) and the text table.
"""

import io

import numpy as np

PLOT_EXTRA = "pip install 'mmkeras[plot]'"
_COUNTS_UP_TO = 30  # classes; beyond this the numbers in the cells are unreadable


def confusion_matrix(y_true, y_pred, num_classes):
    """Counts ``[true, predicted]`` pairs into a ``[num_classes, num_classes]`` int matrix.

    Example:
    ```python
    confusion_matrix([0, 1, 1], [0, 1, 0], 2)  # [[1, 0], [1, 1]]
    ```
    """
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return matrix


def render_confusion_matrix(matrix, cell=16):
    """Renders a confusion matrix as a ``[1, H, W, 3]`` uint8 heat map (rows = true class), no text.

    Each row is normalised to sum to 1; white is 0, dark blue is 1; a grey grid
    separates the cells. The fallback when matplotlib is missing.
    """
    rows = matrix.sum(axis=1, keepdims=True)
    frac = matrix / np.maximum(rows, 1)
    low, high = np.array([255, 255, 255], float), np.array([8, 48, 107], float)
    colours = (low + (high - low) * frac[..., None]).astype(np.uint8)
    image = np.repeat(np.repeat(colours, cell, axis=0), cell, axis=1)
    image[::cell, :] = 160
    image[:, ::cell] = 160
    return image[None]


def confusion_text(matrix, class_names, width=None):
    """The matrix as a text table: rows are true classes, columns predicted classes.

    Example:
    ```python
    print(confusion_text(matrix, ["cat", "dog"]))
    ```
    """
    names = [str(c) for c in class_names]
    width = width or max(5, min(12, max(len(n) for n in names)), len(str(int(matrix.max(initial=0)))) + 1)
    short = [n if len(n) <= width else n[:width - 1] + "~" for n in names]
    corner = "true \\ predicted"
    label = max(len(n) for n in names + [corner])
    lines = [f"{corner:<{label}} " + " ".join(f"{n:>{width}}" for n in short)]
    for name, row in zip(names, matrix):
        lines.append(f"{name:<{label}} " + " ".join(f"{int(v):>{width}}" for v in row))
    return "\n".join(lines)


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def has_plotting():
    """True when matplotlib is installed (labelled PNGs are available)."""
    return _pyplot() is not None


def _figure(matrix, class_names, title):
    plt = _pyplot()
    if plt is None:
        raise ImportError(f"the confusion-matrix PNG needs matplotlib: {PLOT_EXTRA} (the text table needs nothing)")
    n = len(class_names)
    side = min(max(4.0, 0.45 * n + 2.0), 40.0)
    fig, ax = plt.subplots(figsize=(side + 1.2, side))
    rows = matrix.sum(axis=1, keepdims=True)
    frac = matrix / np.maximum(rows, 1)
    im = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    font = max(4, min(10, int(220 / max(n, 1))))
    ax.set_xticks(range(n), [str(c) for c in class_names], rotation=90 if n > 8 else 0, fontsize=font)
    ax.set_yticks(range(n), [str(c) for c in class_names], fontsize=font)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    if n <= _COUNTS_UP_TO:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=font,
                        color="white" if frac[i, j] > 0.5 else "black")
    fig.tight_layout()
    return fig, plt


def confusion_png(matrix, class_names, title="Confusion matrix"):
    """A labelled PNG (bytes): axis titles, class names on both axes, counts in the cells.

    Raises:
        ImportError: without matplotlib (``pip install 'mmkeras[plot]'``).
    """
    fig, plt = _figure(matrix, class_names, title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def confusion_image(matrix, class_names, title="Confusion matrix"):
    """``[1, H, W, 3]`` uint8 for ``tf.summary.image``: the labelled figure, or the heat map without matplotlib."""
    if not has_plotting():
        return render_confusion_matrix(matrix)
    fig, plt = _figure(matrix, class_names, title)
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return image[None]
