"""The figure of one explanation: the panels each modality declares (image + saliency, spectrogram +
IG map, coloured tokens; bars of attribution for a modality that declares none), then the Shapley bars."""

import io

import numpy as np

from mmkeras.modalities import modality


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


def _signed_map(ax, panel, fig, plt):
    """2-D scores on a red (+) / blue (-) scale symmetric around 0, with a colour bar."""
    values = np.asarray(panel["values"], "float32")
    limit = float(np.max(np.abs(values), initial=0.0)) or 1.0
    im = ax.imshow(values, cmap="bwr", vmin=-limit, vmax=limit, aspect="auto", origin="lower"
                   if values.shape[0] < values.shape[1] else "upper")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=6)


def _matrix(ax, panel, fig, plt):
    """2-D values (a spectrogram: frames across, bands up) with a colour bar."""
    im = ax.imshow(np.asarray(panel["values"]), aspect="auto", origin="lower", cmap="magma")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=6)


def _picture(ax, panel, fig, plt):
    ax.imshow(panel["values"], cmap="gray")
    ax.axis("off")


def _tokens(ax, panel, fig, plt):
    """Tokens left to right, wrapped, each on a background coloured by its score (red +, blue -)."""
    ax.axis("off")
    pairs = panel["values"]
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


def _bars(ax, panel, fig, plt):
    """One horizontal bar per ``(label, score)``, red when positive, blue when negative, top to bottom."""
    labels, values = [str(k) for k, _ in panel["values"]], [float(v) for _, v in panel["values"]]
    ax.barh(range(len(values)), values, color=["tab:red" if v > 0 else "tab:blue" for v in values])
    ax.set_yticks(range(len(values)), labels)
    ax.invert_yaxis()
    ax.axvline(0, color="black", linewidth=0.6)
    for k, v in enumerate(values):
        ax.text(v, k, f" {v:+.3f}", va="center", fontsize=7)
    ax.tick_params(labelsize=7)


def _custom(ax, panel, fig, plt):
    panel["draw"](ax, fig, plt)


RENDERERS = {"picture": _picture, "signed_map": _signed_map, "matrix": _matrix, "tokens": _tokens, "bars": _bars,
             "custom": _custom}
"""How each panel kind a :meth:`~mmkeras.modalities.Modality.explanation_panels` returns is drawn."""


def _absent(ax):
    """An absent modality's panel: says so, rather than an unlabelled flat square."""
    ax.axis("off")
    ax.text(0.5, 0.5, "absent\n(no input: the model\ndid not use it)", ha="center", va="center", fontsize=9,
            transform=ax.transAxes, color="dimgray")


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


def _panels(e):
    """Every modality's panels (absent ones say so), in ``present`` order, then the Shapley bars."""
    modalities = list(getattr(e, "modalities", None) or e.shapley)
    names = getattr(e, "element_names", None) or {}
    panels = []
    for i, m in enumerate(modalities):
        if m not in e.integrated_gradients:
            continue
        present = bool(e.features["present"][i])
        for panel in modality(m).explanation_panels(e.features[m], e.integrated_gradients[m], names.get(m)):
            if panel.get("kind") not in RENDERERS:
                raise ValueError(f"explain: the {m} modality's explanation panel {panel.get('title')!r} has kind "
                                 f"{panel.get('kind')!r}; known kinds: {sorted(RENDERERS)}")
            panels.append(panel if present else {**panel, "kind": "absent", "title": f"{panel['name']}: absent"})
    values = list(e.shapley.items())
    total = sum(v for _, v in values)
    panels.append({"kind": "bars", "name": "shapley", "values": values,
                   "title": f"Shapley: sum {total:+.3f}\n= p(all) {e.full:.3f} - p(none) {e.none:.3f}"})
    return panels


def explanation_figure(e, plt=None):
    """The matplotlib figure of an explanation: each modality's panels (its
    :meth:`~mmkeras.modalities.Modality.explanation_panels`), Shapley bars, a caption.

    Example:
    ```python
    fig = explanation_figure(explanation)
    [ax.get_title() for ax in fig.axes]  # ["image (as the model sees it)", ..., "audio: absent", ...]
    ```
    """
    plt = plt or _pyplot()
    panels = _panels(e)
    widths = [float(p.get("width", 1.0)) for p in panels]
    fig, axes = plt.subplots(1, len(panels), figsize=(2.7 * sum(widths), 3.9), gridspec_kw={"width_ratios": widths})
    for ax, panel in zip(np.atleast_1d(axes), panels):
        if panel["kind"] == "absent":
            _absent(ax)
        else:
            ax.tick_params(labelsize=6)
            RENDERERS[panel["kind"]](ax, panel, fig, plt)
            if panel.get("axis") is False:
                ax.axis("off")
        ax.set_title(panel["title"], fontsize=8)
    fig.suptitle(f"{e.model_name}: why class {e.class_name!r} (p={float(e.probabilities[e.target]):.3f})", fontsize=9)
    fig.text(0.01, 0.01, caption(e), fontsize=7, va="bottom", ha="left", wrap=True)
    fig.tight_layout(rect=(0, 0.2, 1, 0.95))  # room for the caption below, the title above
    return fig
