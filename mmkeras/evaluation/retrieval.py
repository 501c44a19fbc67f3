"""Cross-modal retrieval metrics in a shared embedding space."""

import numpy as np


def retrieval_recall(query, gallery, query_labels, gallery_labels, ks=(1, 5), chunk=1024, unique_gallery=True):
    """Class-level recall@k: a query hits when one of its k nearest gallery items has its label.

    Similarity is the dot product (cosine for the L2-normalised embeddings of a
    contrastive model). Identical gallery embeddings (the same clip or image
    paired several times, as in AV-digits) count as one item, so copies of one
    item cannot fill the top k; ``unique_gallery=False`` keeps every row.

    Args:
        query: ``[Q, D]`` embeddings (e.g. audio).
        gallery: ``[G, D]`` embeddings (e.g. images).
        query_labels: ``[Q]`` class of each query.
        gallery_labels: ``[G]`` class of each gallery item.
        ks: tuple of int. The k values.
        chunk: int. Queries scored at once (bounds memory at ``chunk * G`` floats).
        unique_gallery: bool. Merge identical gallery embeddings (to 1e-6).

    Returns:
        dict ``{"recall@1": float, "recall@5": float, ...}`` in [0, 1].

    Example:
    ```python
    emb = model.embed(x_test)
    retrieval_recall(emb["audio_embedding"], emb["image_embedding"], y_test, y_test)
    # {"recall@1": 0.97, "recall@5": 0.99}
    ```
    """
    query, gallery = np.asarray(query, np.float32), np.asarray(gallery, np.float32)
    query_labels, gallery_labels = np.asarray(query_labels), np.asarray(gallery_labels)
    if unique_gallery:
        # Row-wise dedup on rounded values; equal inputs give equal embeddings up to float noise.
        _, keep = np.unique(np.round(gallery, 6), axis=0, return_index=True)
        keep = np.sort(keep)
        gallery, gallery_labels = gallery[keep], gallery_labels[keep]
    kmax = min(max(ks), len(gallery))
    hits = {k: 0 for k in ks}
    for start in range(0, len(query), chunk):
        sims = query[start:start + chunk] @ gallery.T
        top = np.argpartition(-sims, kmax - 1, axis=1)[:, :kmax]
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        match = gallery_labels[top] == query_labels[start:start + chunk, None]
        for k in ks:
            hits[k] += int(match[:, :k].any(axis=1).sum())
    return {f"recall@{k}": hits[k] / len(query) for k in ks}


def cross_modal_recall(model, x, labels, ks=(1, 5), features=None):
    """Audio->image and image->audio class-level recall@k of a contrastive model.

    Each example's embedding of one modality is the query and every example's
    embedding of the other modality is the gallery (the query's own pair included,
    as in CLIP's retrieval protocol; repeated identical items counted once).

    Args:
        model: a :class:`~mmkeras.models.ContrastiveModel`.
        x: raw inputs (or None when ``features`` is given).
        labels: ``[N]`` class labels.
        ks: tuple of int.
        features: optional precomputed feature dict (see ``compute_features``).

    Returns:
        dict ``{"audio->image": {"recall@1": ...}, "image->audio": {...}}`` for
        every ordered pair of the model's modalities.

    Example:
    ```python
    recalls = mmkeras.cross_modal_recall(model, x_test, y_test)
    recalls["audio->image"]["recall@1"]
    ```
    """
    emb = model.predict(features if features is not None else x, verbose=0)
    out = {}
    for q in model.modalities:
        for g in model.modalities:
            if q != g:
                out[f"{q}->{g}"] = retrieval_recall(emb[f"{q}_embedding"], emb[f"{g}_embedding"], labels, labels, ks)
    return out
