"""Google's speech_embedding audio tower (keras.ops only), with the weights openWakeWord ships.

speech_embedding (Google, arXiv:2002.01322, Apache-2.0 on TF Hub) is a keyword-spotting
encoder trained on a large speech corpus: 76 log-mel frames (775 ms) of 16 kHz speech
-> one 96-d embedding of the word-level content. It is a stack of small separable
convolutions (a 3x3 conv, then pairs of 1x3 over frequency and 3x1 over time),
LeakyReLU(0.2) clipped at -0.4, and five max-pools. openWakeWord 0.4.0 ships it as
``embedding_model.onnx`` inside its wheel; :mod:`mmkeras.weights.speech_embedding`
converts it.

Every time convolution is unpadded, so the network runs over a clip of any length
>= 76 frames: token ``t`` of the output is exactly the embedding of the 76-frame
window starting at frame ``8 t`` (what openWakeWord computes with a sliding window).
A 1 s clip (98 frames) gives 3 tokens.

Inputs are ``[B, T, 32]`` features of mmkeras's ``frontend="speech_embedding"``
(the front end openWakeWord's ``melspectrogram.onnx`` computes, in TensorFlow graph
ops), which a tower with ``weights`` implies.
"""

import keras
from keras import layers, ops

from mmkeras.layers.shapes import chain
from mmkeras.modalities.features import SPEECH_EMBEDDING_FRONTEND
from mmkeras.towers.base import TOWERS, Tower
from mmkeras.utils.safe_loading import refuse_external_reference

# After the first 3x3 conv: (kernel, filters, max-pool after it or None) per conv, the ONNX graph's order.
CONVS = (((1, 3), 24, None), ((3, 1), 24, (2, 2)),
         ((1, 3), 48, None), ((3, 1), 48, None), ((1, 3), 48, None), ((3, 1), 48, (1, 2)),
         ((1, 3), 72, None), ((3, 1), 72, None), ((1, 3), 72, None), ((3, 1), 72, (2, 2)),
         ((1, 3), 96, None), ((3, 1), 96, None), ((1, 3), 96, None), ((3, 1), 96, (1, 2)),
         ((1, 3), 96, None), ((3, 1), 96, None), ((1, 3), 96, None), ((3, 1), 96, (2, 2)))
FIRST_FILTERS, EMBEDDING_DIM, WINDOW_FRAMES, TOKEN_STEP = 24, 96, 76, 8
N_MELS = SPEECH_EMBEDDING_FRONTEND["n_mels"]
LEAK, FLOOR = 0.2, -0.4


@keras.saving.register_keras_serializable(package="mmkeras")
@TOWERS.register("audio/speech_embedding")
class AudioSpeechEmbedding(Tower):
    """Google's speech_embedding over speech_embedding log-mels; one 96-d token per 8 frames.

    The first conv's BatchNorm always runs in inference mode with its pretrained
    statistics (the other BatchNorms are folded into their convs in the release).
    Freezing (``tower.trainable = False``) keeps every weight.

    Args:
        dim: int or None. None keeps the 96-d embeddings; an int adds a linear
            projection to ``dim``.
        dropout: float. Dropout on the output sequence (training only).
        weights: None, a registered weights name (``"speech_embedding"``, see
            :mod:`mmkeras.weights`) or a path to openWakeWord's ``embedding_model.onnx``.
            Loaded once, when the tower is built; not part of ``get_config``, so a
            saved model reloads its own (fine-tuned) weights without the package.

    Example:
    ```python
    tower = AudioSpeechEmbedding(weights="speech_embedding")
    out = tower(keras.ops.zeros((2, 98, 32)))  # sequence [2, 3, 96], pooled [2, 96]
    ```
    """

    accepts_mask = False  # the features are fixed-length; padding is silence, as in the original

    def __init__(self, dim=None, dropout=0.0, weights=None, **kwargs):
        super().__init__(dim=dim, dropout=dropout, **kwargs)
        refuse_external_reference("weights", weights, "audio/speech_embedding tower")
        self.weights_source = weights
        dt = self.dtype_policy
        self.first = [layers.Conv2D(FIRST_FILTERS, 3, use_bias=False, dtype=dt, name="conv0"),
                      layers.BatchNormalization(epsilon=1e-3, dtype=dt, name="conv0_bn")]
        self.convs, self.pools = [], []
        for i, (kernel, filters, pool) in enumerate(CONVS, start=1):
            # A 1x3 kernel pads frequency only ("same" pads nothing on a size-1 axis); time is never padded.
            self.convs.append(layers.Conv2D(filters, kernel, padding="same" if kernel[0] == 1 else "valid",
                                            dtype=dt, name=f"conv{i}"))
            self.pools.append(layers.MaxPooling2D(pool, dtype=dt, name=f"pool{i}") if pool else None)
        self.last = layers.Conv2D(EMBEDDING_DIM, (3, 1), use_bias=False, dtype=dt, name=f"conv{len(CONVS) + 1}")
        self.project = layers.Dense(dim, dtype=dt, name="project") if dim is not None else None
        self.drop = layers.Dropout(dropout, dtype=dt, name="out_drop")
        self.backbone_layers = self.first + [x for pair in zip(self.convs, self.pools) for x in pair if x] + [self.last]
        self.after_trainable_change()

    @staticmethod
    def _activate(x):
        return ops.maximum(ops.leaky_relu(x, LEAK), FLOOR)

    def _check_input(self, input_shape):
        if len(input_shape) != 3 or input_shape[-1] != N_MELS:
            raise ValueError(f"{type(self).__name__} takes [B, T, {N_MELS}] speech_embedding log-mels "
                             f"(audio preprocessing frontend='speech_embedding'), got {input_shape}")
        if input_shape[1] is not None and input_shape[1] < WINDOW_FRAMES:
            raise ValueError(f"{type(self).__name__} needs at least {WINDOW_FRAMES} frames (duration_s >= 0.785 at "
                             f"16 kHz, 10 ms frames), got {input_shape[1]}")

    def encode(self, x, mask=None, training=None):
        self._check_input(tuple(x.shape))
        h = ops.pad(ops.expand_dims(x, -1), [[0, 0], [0, 0], [1, 1], [0, 0]])  # 1 zero band each side
        h = self._activate(self.first[1](ops.relu(self.first[0](h)), training=False))
        for conv, pool in zip(self.convs, self.pools):
            h = self._activate(conv(h))
            if pool is not None:
                h = pool(h)
        sequence = ops.squeeze(self.last(h), axis=2)  # [B, T', 1, 96] -> [B, T', 96]
        if self.project is not None:
            sequence = self.project(sequence)
        return self.drop(sequence, training=training), None

    def encode_shape(self, input_shape, build=False):
        self._check_input(input_shape)
        b, t, f = input_shape
        shape = chain(self.first, (b, t, f + 2, 1), build)
        for conv, pool in zip(self.convs, self.pools):
            shape = chain([conv] + ([pool] if pool else []), shape, build)
        b, t, _, d = chain([self.last], shape, build)
        after = ([self.project] if self.project is not None else []) + [self.drop]
        return chain(after, (b, t, d), build)

    @classmethod
    def implied_preprocessing(cls, options):
        """The front end the weights were trained with (16 kHz, 32 Slaney mels, dB / 10 + 2): always implied.

        The architecture fixes 32 bands, so even a randomly initialised tower takes this front end.
        """
        refuse_external_reference("weights", options.get("weights"), "audio/speech_embedding tower")
        return {"frontend": "speech_embedding", **SPEECH_EMBEDDING_FRONTEND}

    def portable_config(self, spec):
        return {k: v for k, v in spec.items() if k != "weights"}

    def after_trainable_change(self):
        self.first[1].trainable = False  # pretrained statistics, inference mode, always

    def layer_groups(self):
        """Five groups, one per max-pool stage (the first holds the 3x3 conv)."""
        groups, current = [], list(self.first)
        for conv, pool in zip(self.convs, self.pools):
            current.append(conv)
            if pool is not None:
                groups.append(current + [pool])
                current = []
        groups[-1].append(self.last)
        return groups

    def build(self, input_shape):
        super().build(input_shape)
        if self.weights_source is not None:
            from mmkeras.weights.speech_embedding import load_speech_embedding

            load_speech_embedding(self, self.weights_source)
