"""The multimodal VAE's training objective: a sum of ELBOs over modality subsets.

The loss is a sum of ELBOs over modality subsets ("subset sampling"): the joint
posterior of all present modalities plus every single modality's (``subsets:
"mvae"``), or every non-empty subset (``"all"``). With ``cross_reconstruction``
(the default) each subset's latent reconstructs every present modality of the
example, as in MoPoE-VAE (Sutter et al., ICLR 2021), which is what makes a
latent from one modality decode into the others; without it a subset
reconstructs only its own modalities (the MVAE paper's objective). A cross term
(a modality decoded from a subset without it) trains the encoders only
(``cross_decoder_gradient: False``, the default): the decoder then never learns to
output the average of everything the other modalities leave open, so decoding
their posterior gives one sharp-ish image rather than a blur. The KL term's
weight ramps linearly from 0 to ``beta`` over ``kl_anneal_steps`` training steps;
the step count is a model weight, so it is saved with the model and resumes.

With ``private_dim`` > 0, a term that reconstructs ``m`` from a subset holding ``m``
samples the private latent ``w_m ~ q(w_m | x_m)``; a cross term samples it from
the prior (MMVAE+, Palumbo et al., ICLR 2023).

Likelihoods: images normalised to [0, 1] (``normalize: "unit"``) are Bernoulli
(cross-entropy on logits); every other feature is a Gaussian with fixed
``gaussian_sigma`` in standardised units (the decoder's feature statistics,
:mod:`mmkeras.models.vae_statistics`). Both are summed over the feature's elements.
"""

from keras import ops

from mmkeras.layers.gaussian import gaussian_kl
from mmkeras.models.vae_config import likelihood


class VAEObjective:
    """The ELBO methods of :class:`~mmkeras.models.MultimodalVAE` (a mixin of it).

    Reads the model's ``mm_config``, ``modalities``, ``decoded``, ``subsets``,
    ``kl_step``, ``term_trackers`` and its layers by name.
    """

    def kl_weight(self):
        """The current KL weight: ``beta * min(1, step / kl_anneal_steps)``."""
        vae = self.mm_config["vae"]
        if not vae["kl_anneal_steps"]:
            return ops.convert_to_tensor(float(vae["beta"]))
        return vae["beta"] * ops.minimum(1.0, ops.cast(self.kl_step, "float32") / vae["kl_anneal_steps"])

    def negative_log_likelihood(self, m, decoded, target):
        """Per-example negative log-likelihood of modality ``m``'s features ``[B, ...]`` -> ``[B]``."""
        target = ops.cast(target, "float32")
        if likelihood(self.mm_config["modalities"][m]) == "bernoulli":
            terms = ops.binary_crossentropy(target, decoded, from_logits=True)
        else:
            sigma = float(self.mm_config["vae"]["gaussian_sigma"]) * self.get_layer(f"{m}_decoder").scale
            terms = 0.5 * ops.square((target - decoded) / sigma)
        return ops.sum(ops.reshape(terms, (ops.shape(terms)[0], -1)), axis=-1)

    def _decoder_parameter(self, outputs, m):
        return outputs[f"{m}_logits"] if f"{m}_logits" in outputs else outputs[f"{m}_reconstruction"]

    def elbo_terms(self, x, y_pred):
        """Per-subset ``(subset, valid [B], reconstruction NLL [B] per modality, KL [B])``.

        The full set reads the forward pass (its sample and decodings); every other
        subset samples its own product-of-experts posterior and decodes it.
        """
        present = ops.cast(x["present"], "float32")
        weights = self.mm_config["vae"]["reconstruction_weights"]
        cross = self.mm_config["vae"]["cross_reconstruction"]
        means = [y_pred[f"{m}_mean"] for m in self.modalities]
        log_vars = [y_pred[f"{m}_log_var"] for m in self.modalities]
        out = []
        for subset in self.subsets:
            if len(subset) == len(self.modalities):  # the forward pass: all present modalities
                valid = ops.max(present, axis=1)
                mean, log_var = y_pred["embedding"], y_pred["log_var"]
                decoded = {m: self._decoder_parameter(y_pred, m) for m in self.decoded}
            else:
                indicator = ops.convert_to_tensor([[1.0 if i in subset else 0.0 for i in range(len(means))]])
                valid = ops.min(ops.take(present, list(subset), axis=1), axis=1)
                mean, log_var = self.get_layer("product_of_experts")(means, log_vars, present * indicator)
                z = self.get_layer("sample")(mean, log_var, training=True)
                targets = [m for m in self.decoded if cross or self.modalities.index(m) in subset]
                own = {m: self.modalities.index(m) in subset for m in targets}
                decoded = {m: self._decode(m, self._decoder_input(m, z, y_pred, own[m]), own[m]) for m in targets}
            nll = {m: float(weights.get(m, 1.0)) * present[:, self.modalities.index(m)]
                   * self.negative_log_likelihood(m, d, x[m]) for m, d in decoded.items()}
            out.append((subset, valid, nll, gaussian_kl(mean, log_var)))
        return out

    def _decode(self, m, decoder_input, own):
        """Decoder ``m`` on ``decoder_input``; a cross term (not ``own``) without ``cross_decoder_gradient``
        runs it on stop-gradient copies of its weights, so that term trains the encoders only."""
        decoder = self.get_layer(f"{m}_decoder")
        if own or self.mm_config["vae"]["cross_decoder_gradient"]:
            return decoder(decoder_input)
        # Trained by cross terms the decoder learns to output the average of every image
        # the other modality leaves possible (a blur the image-only judge rejects); trained
        # by the own-modality terms alone it keeps decoding single images, and the cross
        # terms move the other modality's expert to where those images match.
        frozen = [ops.stop_gradient(v.value) for v in decoder.trainable_variables]
        out, _ = decoder.stateless_call(frozen, [v.value for v in decoder.non_trainable_variables], decoder_input)
        return out

    def _decoder_input(self, m, z, y_pred, own):
        """``z``, or ``[z, w_m]`` with ``w_m`` from ``q(w_m | x_m)`` (``own``) or the prior (a cross term)."""
        if not self.mm_config["vae"]["private_dim"]:
            return z
        mean = y_pred[f"{m}_private_mean"]
        log_var = y_pred[f"{m}_private_log_var"] if own else ops.zeros_like(mean)
        w = self.get_layer(f"{m}_private_sample")(mean if own else ops.zeros_like(mean), log_var, training=True)
        return self.get_layer(f"{m}_decoder_input")([z, w])

    def private_kl(self, x, y_pred):
        """``sum_m present_m KL(q(w_m | x_m) || N(0, I))`` per example ``[B]`` (needs ``private_dim`` > 0)."""
        present = ops.cast(x["present"], "float32")
        return sum(present[:, self.modalities.index(m)] * gaussian_kl(
            y_pred[f"{m}_private_mean"], y_pred[f"{m}_private_log_var"]) for m in self.decoded)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The subset-sampled ELBO (negated, averaged over the batch) plus regularisers."""
        beta = self.kl_weight()
        private = bool(self.mm_config["vae"]["private_dim"])
        private_kl = self.private_kl(x, y_pred) if private else None
        loss = ops.mean(beta * private_kl) if private else 0.0
        for i, (_subset, valid, nll, kl) in enumerate(self.elbo_terms(x, y_pred)):
            recon = sum(nll.values()) if nll else ops.zeros_like(kl)
            loss = loss + ops.mean(valid * (recon + beta * kl))
            if i == 0:  # track the full set's terms
                self.term_trackers[0].update_state(kl, sample_weight=valid)
                present = ops.cast(x["present"], "float32")
                for tracker, m in zip(self.term_trackers[1:], self.decoded):
                    tracker.update_state(nll[m], sample_weight=present[:, self.modalities.index(m)])
                if private:
                    self.term_trackers[-1].update_state(private_kl)
        if training:
            self.kl_step.assign_add(1.0)
        if self.losses:  # regularisers
            loss = loss + ops.sum(ops.stack(self.losses))
        return loss
