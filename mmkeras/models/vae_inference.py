"""The multimodal VAE's inference API: embed, reconstruct, generate across modalities, decode latents.

Every entry takes raw inputs (``{modality: values}``, ``b""`` or a missing key for
an absent modality) or feature dicts; the exported SavedModel's ``embed``
signature runs :meth:`VAEInference.embed_features`.
"""

from keras import ops

from mmkeras.models.vae_config import expert_inputs, likelihood

ESTIMATES = ("mean", "mode")


class VAEInference:
    """``embed``, ``reconstruct``, ``generate``, ``decode`` of :class:`~mmkeras.models.MultimodalVAE`
    (a mixin of it)."""

    def _features(self, x, batch_size):
        return self.preprocess(x, batch_size=batch_size or 256) if self._takes_raw(x) else dict(x)

    def embed(self, x, batch_size=None, verbose=0):
        """Raw inputs or features -> ``{"embedding", "log_var", "present"}``: the joint posterior of
        each example's present modalities (any subset; an example with none gets the prior).

        Example:
        ```python
        z = model.embed({"image": pngs, "audio": [b""] * len(pngs)})["embedding"]  # image alone
        ```
        """
        features = self._features(x, batch_size)
        out = self.predict(features, batch_size=batch_size, verbose=verbose)
        return {"embedding": out["embedding"], "log_var": out["log_var"], "present": features["present"]}

    def reconstruct(self, x, batch_size=None, verbose=0):
        """Raw inputs or features -> ``{modality: reconstruction}`` from the joint posterior mean.

        Example:
        ```python
        pixels = model.reconstruct({"image": pngs, "audio": wavs})["image"]  # [N, 32, 32, 3] in [0, 1]
        ```
        """
        out = self.predict(self._features(x, batch_size), batch_size=batch_size, verbose=verbose)
        return {m: out[f"{m}_reconstruction"] for m in self.decoded}

    def generate(self, x, target=None, batch_size=None, verbose=0, style_seed=None, refine_steps=0,
                 estimate="mean"):
        """Cross-modal generation: ``target``'s features decoded from the *other* modalities alone.

        ``target``'s own input, if any, is removed first (zeros, ``present`` 0). Every
        example needs another modality present. The joint posterior of the other
        modalities is decoded at its mean; ``refine_steps`` then repeats: treat the
        generated features as observed, take the joint posterior of them and the
        other modalities, decode its mean (the imputation chain of Rezende et al.,
        ICML 2014, section 5, with means instead of samples). Each step pulls a
        style-averaged first decoding towards one image the decoder has learnt
        (measured on AV-digits in benchmarks/README.md); nothing but the other
        modalities enters, so it is still generation from them alone.

        Args:
            x: raw inputs (``{"audio": wavs}``; a missing key counts as absent) or features.
            target: str or None. The modality to generate (one the model decodes);
                None: the first decoded modality in modality order (images, for
                an image + audio model).
            style_seed: int or None. With private latents (``private_dim``): None
                decodes the prior mean ``w = 0`` (a typical style, deterministic);
                an int draws ``w ~ N(0, I)`` per example with that seed.
            refine_steps: int >= 0. Refinement steps after the first decoding.
            estimate: ``"mean"`` or ``"mode"``. What of the decoder's distribution to
                return: its mean (pixel probabilities in [0, 1]) or its mode (Bernoulli
                pixels: 1 where the probability exceeds 0.5; a Gaussian's mode is its mean).

        Returns:
            numpy array ``[N, *feature_shape]`` (pixels in [0, 1] for images).

        Example:
        ```python
        images = model.generate({"audio": wavs}, target="image", refine_steps=2)  # [N, 32, 32, 3]
        ```
        """
        import numpy as np

        target = self.decoded[0] if target is None else target
        if target not in self.decoded:
            raise ValueError(f"generate: target must be a decoded modality {self.decoded}, got {target!r}")
        if isinstance(refine_steps, bool) or not isinstance(refine_steps, int) or refine_steps < 0:
            raise ValueError(f"generate: refine_steps must be an integer >= 0, got {refine_steps!r}")
        if estimate not in ESTIMATES:
            raise ValueError(f"generate: estimate must be one of {ESTIMATES}, got {estimate!r}")
        if self._takes_raw(x):
            n = len(next(v for v in x.values()))
            x = {m: x.get(m, [b""] * n) for m in self.modalities}
        features = self._features(x, batch_size)
        i = self.modalities.index(target)
        features[target] = np.zeros_like(features[target])
        present = np.array(features["present"], dtype="float32")
        present[:, i] = 0.0
        features["present"] = present
        empty = np.flatnonzero(present.sum(axis=1) == 0)
        if len(empty):
            raise ValueError(f"generate: example {int(empty[0])} has no modality other than {target!r} present "
                             f"({len(empty)} such examples); cross-modal generation needs one")
        if style_seed is None or not self.mm_config["vae"]["private_dim"]:
            generated = self.predict(features, batch_size=batch_size, verbose=verbose)[f"{target}_reconstruction"]
        else:
            z = self.predict(features, batch_size=batch_size, verbose=verbose)["embedding"]
            w = np.random.default_rng(style_seed).standard_normal((len(z), self.mm_config["vae"]["private_dim"]))
            generated = self.decode(target, z, w.astype("float32"), batch_size=batch_size)
        observed = dict(features, present=present.copy())
        observed["present"][:, i] = 1.0
        for _ in range(refine_steps):
            observed[target] = generated.astype(features[target].dtype)
            generated = self.predict(observed, batch_size=batch_size, verbose=verbose)[f"{target}_reconstruction"]
        if estimate == "mode" and likelihood(self.mm_config["modalities"][target]) == "bernoulli":
            generated = (generated > 0.5).astype(generated.dtype)
        return generated

    def decode(self, target, z, w=None, batch_size=None):
        """Decodes latents ``z`` ``[N, Z]`` (and private ``w`` ``[N, W]``, default 0) into ``target``'s features.

        Example:
        ```python
        images = model.decode("image", np.random.default_rng(0).standard_normal((16, 32)))  # prior samples
        ```
        """
        import numpy as np

        if target not in self.decoded:
            raise ValueError(f"decode: target must be a decoded modality {self.decoded}, got {target!r}")
        z = np.asarray(z, "float32")
        private = self.mm_config["vae"]["private_dim"]
        if private:
            w = np.zeros((len(z), private), "float32") if w is None else np.asarray(w, "float32")
            z = np.asarray(self.get_layer(f"{target}_decoder_input")([z, w]))
        out = []
        for start in range(0, len(z), batch_size or 256):
            decoded = self.get_layer(f"{target}_decoder")(z[start:start + (batch_size or 256)])
            if likelihood(self.mm_config["modalities"][target]) == "bernoulli":
                decoded = self.get_layer(f"{target}_probabilities")(decoded)
            out.append(ops.convert_to_numpy(decoded))
        return np.concatenate(out)

    def embed_features(self, features):
        """Feature dict -> ``{"embedding", "log_var", "present"}`` without decoding (the exported ``embed``)."""
        encoded = expert_inputs(self.mm_config, self.backbone(features, training=False),
                                lambda m: self.get_layer(f"{m}_flatten"))
        experts = [self.get_layer(f"{m}_encoder")(encoded[m]) for m in self.modalities]
        mean, log_var = self.get_layer("product_of_experts")(
            [e[0] for e in experts], [e[1] for e in experts], features["present"])
        return {"embedding": mean, "log_var": log_var, "present": ops.cast(features["present"], "float32")}
