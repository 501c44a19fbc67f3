"""The figure of one explanation: image + saliency, spectrogram + IG map, coloured tokens, Shapley bars."""

import io

import numpy as np


def _pyplot():
    try:
        import matplotlib
    except ImportError as err:
        raise ImportError("explanation figures need matplotlib: pip install 'mmkeras[plot]' "
                          "(or pip install matplotlib)") from err
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_atomic(path, data):
    """Writes bytes atomically and durably (a reader never sees half a PNG; see ``mmkeras.utils.atomic``)."""
    from mmkeras.utils.atomic import atomic_write_bytes

    atomic_write_bytes(path, data)


def _symmetric(ax, values, title, fig, plt):
    limit = float(np.max(np.abs(values))) or 1.0
    im = ax.imshow(values, cmap="bwr", vmin=-limit, vmax=limit, aspect="auto", origin="lower"
                   if values.shape[0] < values.shape[1] else "upper")
    ax.set_title(title, fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=6)


def _tokens(ax, tokens, scores, plt):
    """Tokens left to right, wrapped, each on a background coloured by its score (red +, blue -)."""
    ax.axis("off")
    pairs = [(t, s) for t, s in zip(tokens, scores) if t not in ("", "[PAD]")]
    limit = max((abs(s) for _, s in pairs), default=1.0) or 1.0
    cmap = plt.get_cmap("bwr")
    renderer = ax.figure.canvas.get_renderer()
    to_axes = ax.transAxes.inverted()
    x, y = 0.0, 0.9
    for token, score in pairs:
        text = ax.text(x, y, token, fontsize=8, transform=ax.transAxes, va="top",
                       bbox={"facecolor": cmap(0.5 + 0.5 * score / limit), "edgecolor": "none", "pad": 1.5})
        box = to_axes.transform(text.get_window_extent(renderer=renderer))
        width = box[1][0] - box[0][0] + 0.02
        if x > 0 and x + width > 1.0:  # wrap: move the token to the next line
            x, y = 0.0, y - 0.18
            text.set_position((x, y))
        x += width
    ax.set_title(f"text: integrated gradients per token (max |score| {limit:.3g})", fontsize=8)


def _absent(ax, title):
    """An absent modality's panel: says so, rather than an unlabelled flat square."""
    ax.axis("off")
    ax.text(0.5, 0.5, "absent\n(no input: the model\ndid not use it)", ha="center", va="center", fontsize=9,
            transform=ax.transAxes, color="dimgray")
    ax.set_title(f"{title}: absent", fontsize=8)


def caption(e):
    """The figure's legend: what the Shapley bars and integrated gradients mean, with this example's numbers."""
    c = e.ig_completeness
    return ("Shapley value (bars): how much a modality adds to p(class) on average over every order of adding "
            f"the modalities; they sum to p(all present) - p(none present) = {e.full:.3f} - {e.none:.3f}.\n"
            "Integrated gradients (maps, tokens): each input element's share of f(x) - f(baseline), f = p(class), "
            "baseline = zero features (text: zero token embeddings); red raises p(class), blue lowers it.\n"
            f"Completeness check: the shares add up to {c['attribution_sum']:+.4f} vs f(x) - f(baseline) = "
            f"{c['gap']:+.4f} (integration error {c['error']:+.1e} with {c['steps']} steps; smaller is better).")


def explanation_png(e):
    """PNG bytes of an :class:`~mmkeras.evaluation.explain.Explanation`'s figure."""
    plt = _pyplot()
    fig = explanation_figure(e, plt)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def explanation_figure(e, plt=None):
    """The matplotlib figure of an explanation (panels per modality, Shapley bars, a caption).

    Example:
    ```python
    fig = explanation_figure(explanation)
    [ax.get_title() for ax in fig.axes]  # ["image (as the model sees it)", ..., "audio: absent", ...]
    ```
    """
    plt = plt or _pyplot()
    modalities = list(getattr(e, "modalities", None) or [m for m in ("image", "audio", "text")
                                                          if m in e.integrated_gradients])
    present = {m: bool(e.features["present"][i]) for i, m in enumerate(modalities)}
    panels = []
    if "image" in e.integrated_gradients:
        panels += ["image", "image_ig"]
    if "audio" in e.integrated_gradients:
        panels += ["audio", "audio_ig"]
    if e.tokens is not None:
        panels.append("text")
    panels.append("shapley")
    fig, axes = plt.subplots(1, len(panels), figsize=(2.7 * len(panels) + (2.0 if "text" in panels else 0), 3.9))
    axes = np.atleast_1d(axes)
    for ax, panel in zip(axes, panels):
        modality = panel.split("_")[0]
        if modality in present and not present[modality]:
            _absent(ax, panel.replace("_ig", ": integrated gradients"))
        elif panel == "image":
            img = np.asarray(e.features["image"], "float32")
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else np.clip(img, 0, 1), cmap="gray")
            ax.set_title("image (as the model sees it)", fontsize=8)
            ax.axis("off")
        elif panel == "image_ig":
            _symmetric(ax, np.sum(e.integrated_gradients["image"], axis=-1), "image: integrated gradients", fig, plt)
            ax.axis("off")
        elif panel == "audio":
            im = ax.imshow(np.asarray(e.features["audio"]).T, aspect="auto", origin="lower", cmap="magma")
            ax.set_title("audio log-mel (frames x bands)", fontsize=8)
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=6)
        elif panel == "audio_ig":
            _symmetric(ax, np.asarray(e.integrated_gradients["audio"]).T, "audio: integrated gradients", fig, plt)
        elif panel == "text":
            _tokens(ax, e.tokens, e.integrated_gradients["text"], plt)
        else:
            names = list(e.shapley)
            values = [e.shapley[m] for m in names]
            ax.barh(names, values, color=["tab:red" if v > 0 else "tab:blue" for v in values])
            ax.axvline(0, color="black", linewidth=0.6)
            for k, v in enumerate(values):
                ax.text(v, k, f" {v:+.3f}", va="center", fontsize=7)
            ax.set_title(f"Shapley: sum {sum(values):+.3f}\n= p(all) {e.full:.3f} - p(none) {e.none:.3f}", fontsize=8)
            ax.tick_params(labelsize=7)
        if panel in ("audio", "audio_ig"):
            ax.tick_params(labelsize=6)
    fig.suptitle(f"{e.model_name}: why class {e.class_name!r} (p={float(e.probabilities[e.target]):.3f})", fontsize=9)
    fig.text(0.01, 0.01, caption(e), fontsize=7, va="bottom", ha="left", wrap=True)
    fig.tight_layout(rect=(0, 0.2, 1, 0.95))  # room for the caption below, the title above
    return fig
