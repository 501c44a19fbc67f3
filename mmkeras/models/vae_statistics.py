"""The multimodal VAE's training-data statistics: what ``fit`` learns before the first step.

A Gaussian decoder predicts ``(x - mean) / std`` with the feature's mean and std
measured on the training inputs when ``fit`` (or :meth:`MultimodalVAE.adapt`)
first sees them, stored as decoder weights (saved with the model); the
preprocessing state (a vocabulary) is learned at the same time.
"""

import os


class VAEStatistics:
    """``adapt`` and ``fit`` of :class:`~mmkeras.models.MultimodalVAE` (a mixin of it)."""

    def adapt(self, x, max_examples=2048, allow_outside=False):
        """Learns the preprocessing state (text vocabulary, from raw inputs) and sets the Gaussian
        decoders' feature statistics from the first ``max_examples`` training examples' present rows.

        ``fit`` calls it on its first call; call it yourself before training on a
        ``tf.data`` pipeline of your own (pass a dict of features or raw inputs, or
        a manifest path: the vocabulary is learned from its whole text column, the
        statistics from the files of its first ``max_examples`` rows).

        Example:
        ```python
        model.adapt({"image": pngs, "audio": wavs})  # or model.adapt("train.csv")
        ```
        """
        import numpy as np

        if isinstance(x, (str, os.PathLike)):
            from mmkeras.data.manifest import load_manifest

            super().adapt(x, allow_outside=allow_outside)  # the state learns from the whole manifest
            manifest = load_manifest(x, model=self, allow_outside=allow_outside)
            x = manifest.raw_inputs(range(min(len(manifest), max_examples)))
        if self._takes_raw(x):
            if self.preprocessor is not None and self.preprocessor.needs_adapt:
                super().adapt(x)
            n = min(len(next(iter(x.values()))), max_examples)
            features = self.preprocess({k: v[:n] for k, v in x.items()})
        elif isinstance(x, dict):
            features = {k: np.asarray(v[:max_examples]) for k, v in x.items()}
        else:
            raise ValueError("MultimodalVAE.adapt takes a dict of raw inputs or features; for a tf.data "
                             "pipeline, call adapt on a sample of its features first")
        present = np.asarray(features["present"]) > 0
        for m in self.decoded:
            decoder = self.get_layer(f"{m}_decoder")
            if not decoder.standardize:
                continue
            rows = np.asarray(features[m])[present[:, self.modalities.index(m)]]
            if not len(rows):
                raise ValueError(f"adapt: no example has modality {m!r} present; its decoder needs some to "
                                 "measure the feature statistics")
            decoder.set_statistics(rows.mean(), max(float(rows.std()), 1e-3))

    def fit(self, x=None, y=None, allow_outside=False, **kwargs):
        """Keras ``fit`` on raw inputs, a manifest path (or features) without labels.

        On the first call it sets the Gaussian decoders' feature statistics from
        ``x`` (see :meth:`adapt`); a ``tf.data`` input needs ``adapt`` first.

        Example:
        ```python
        model.fit({"image": pngs, "audio": wavs}, epochs=10, batch_size=128)  # or model.fit("train.csv")
        ```
        """
        if y is not None:
            raise ValueError("a VAE is trained on inputs only: call fit(x) without y")
        if not all(self.get_layer(f"{m}_decoder").statistics_set() for m in self.decoded):
            if not isinstance(x, (dict, str, os.PathLike)):
                raise ValueError("fit: the decoders' feature statistics are not set yet; call "
                                 "model.adapt(features_or_raw_dict) before fitting on a dataset")
            self.adapt(x, allow_outside=allow_outside)
        return super().fit(x, None, allow_outside=allow_outside, **kwargs)
