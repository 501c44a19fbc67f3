"""Inputs for every public part and layer, shared by the part test and the Keras-contract test.

A test that covers "every registered part" reads its cases here, so a new tower,
fusion block, head or layer gets one entry and runs through both helpers.
"""

import numpy as np

RNG = np.random.default_rng(0)
BATCH = 3
TOKENS = np.array([[5, 6, 7, 0], [8, 0, 0, 0], [1, 2, 3, 4]], "int32")

TOWER_CASES = {
    "image/cnn": ({"filters": [8, 16], "dim": 16}, RNG.random((BATCH, 16, 16, 3), dtype="float32")),
    "image/resnet": ({"widths": [8, 16], "blocks_per_stage": 1, "dim": 16},
                     RNG.random((BATCH, 16, 16, 3), dtype="float32")),
    "image/vit": ({"patch_size": 8, "dim": 16, "num_layers": 1, "num_heads": 2},
                  RNG.random((BATCH, 16, 16, 3), dtype="float32")),
    "audio/cnn": ({"filters": [8, 16], "dim": 16}, RNG.standard_normal((BATCH, 20, 12), dtype="float32")),
    "audio/temporal_cnn": ({"filters": [8, 16], "kernel_size": 5, "dim": 16},
                           RNG.standard_normal((BATCH, 20, 12), dtype="float32")),
    "audio/rnn": ({"dim": 16, "cell": "lstm"}, RNG.standard_normal((BATCH, 20, 12), dtype="float32")),
    "audio/transformer": ({"dim": 16, "num_layers": 1, "num_heads": 2},
                          RNG.standard_normal((BATCH, 20, 12), dtype="float32")),
    "text/transformer": ({"vocab_size": 50, "dim": 16, "num_layers": 1, "num_heads": 2}, TOKENS),
    "text/rnn": ({"vocab_size": 50, "dim": 16, "embedding_dim": 8, "cell": "gru"}, TOKENS),
    "text/cnn": ({"vocab_size": 50, "dim": 16, "embedding_dim": 8, "filters": 4}, TOKENS),
}
# Pretrained-architecture towers, randomly initialised (no weights files needed). Their own
# generator keeps the inputs of the cases above unchanged.
_PRETRAINED_RNG = np.random.default_rng(15)
TOWER_CASES["image/efficientnet_lite"] = (
    {"dim": 16, "drop_connect_rate": 0.2, "stages": [[1, 3, 1, 1, 8], [2, 5, 2, 3, 12]], "stem_filters": 8,
     "head_filters": 24}, _PRETRAINED_RNG.random((BATCH, 16, 16, 1), dtype="float32"))
TOWER_CASES["audio/speech_embedding"] = (  # the full (330k-parameter) architecture: 76 frames is its minimum
    {"dim": 16}, _PRETRAINED_RNG.standard_normal((BATCH, 84, 32), dtype="float32"))
TOWER_CASES["text/keras_hub"] = (  # a tiny randomly initialised keras-hub BERT
    {"backbone": {"class_name": "BertBackbone", "config": {"vocabulary_size": 50, "num_layers": 1, "num_heads": 2,
                                                           "hidden_dim": 16, "intermediate_dim": 32,
                                                           "max_sequence_length": 8}}, "dim": 16}, TOKENS)
TOWER_CASES["image/keras_hub"] = (  # a tiny randomly initialised keras-hub VGG
    {"backbone": {"class_name": "VGGBackbone", "config": {"stackwise_num_repeats": [1, 1],
                                                          "stackwise_num_filters": [4, 8]}}, "dim": 16},
    _PRETRAINED_RNG.random((BATCH, 16, 16, 3), dtype="float32"))

FUSION_CASES = {
    "fusion/concat": {"dim": 8},
    "fusion/gated": {"dim": 8},
    "fusion/late": {"dim": 8},
    "fusion/attention": {"dim": 8, "num_heads": 2},
    "fusion/tensor": {"rank": 3, "dim": 8},
    "fusion/transformer": {"dim": 8, "num_layers": 1, "num_heads": 2},
    "fusion/coattention": {"dim": 8, "num_layers": 1, "num_heads": 2, "mlp_ratio": 2.0},
    "fusion/lmf": {"dim": 8, "rank": 3},
    "fusion/mult": {"dim": 8, "num_layers": 1, "self_layers": 1, "num_heads": 2, "mlp_ratio": 2.0},
    "fusion/bottleneck": {"dim": 8, "num_layers": 2, "num_bottlenecks": 2, "fusion_layer": 0, "num_heads": 2,
                          "mlp_ratio": 2.0},
    "fusion/perceiver": {"dim": 8, "num_latents": 4, "num_layers": 1, "num_heads": 2, "mlp_ratio": 2.0},
}
SEQ_LENGTHS = (4, 6, 5)
# Presence of the 3 modalities per row of fusion_inputs().
PRESENCE_PATTERNS = {
    "some absent": np.array([[1, 1, 1], [1, 0, 1], [0, 1, 0]], "float32"),
    "all absent in row 1": np.array([[1, 1, 1], [0, 0, 0], [0, 1, 1]], "float32"),
}

HEAD_CASES = {
    "classification": {"units": 4},
    "multilabel": {"units": 3, "hidden_units": 8},
    "regression": {"units": 2},
}


def fusion_inputs():
    """Flat numpy inputs of a 3-modality fusion block: ``seq{i}``, ``mask{i}``, ``pooled{i}``, ``present``."""
    inputs = {"present": np.array([[1, 1, 1], [1, 0, 1], [0, 1, 0]], "float32")}
    for i, t in enumerate(SEQ_LENGTHS):
        inputs[f"seq{i}"] = RNG.standard_normal((BATCH, t, 8), dtype="float32")
        inputs[f"pooled{i}"] = RNG.standard_normal((BATCH, 8), dtype="float32")
        inputs[f"mask{i}"] = RNG.random((BATCH, t)) > 0.3
    return inputs


def towers_from(ins):
    """The list of tower output dicts inside :func:`fusion_inputs` (numpy or Keras tensors)."""
    return [
        {"sequence": ins[f"seq{i}"], "mask": ins[f"mask{i}"], "pooled": ins[f"pooled{i}"]}
        for i in range(len(SEQ_LENGTHS))
    ]


def tower_output(batch=BATCH, steps=5, dim=8):
    """One tower output dict of numpy arrays."""
    return {"sequence": RNG.standard_normal((batch, steps, dim), dtype="float32"),
            "mask": RNG.random((batch, steps)) > 0.3,
            "pooled": RNG.standard_normal((batch, dim), dtype="float32")}


# mmkeras.layers classes (and the contrastive head): init kwargs and call inputs
# (a dict means keyword arguments of a multi-input call).
LAYER_CASES = {
    "MaskedMeanPooling": ({}, RNG.standard_normal((BATCH, 5, 8), dtype="float32")),
    "PositionEmbedding": ({}, RNG.standard_normal((BATCH, 5, 8), dtype="float32")),
    "TransformerBlock": ({"num_heads": 2}, RNG.standard_normal((BATCH, 5, 8), dtype="float32")),
    "CrossAttentionBlock": ({"num_heads": 2, "mlp_ratio": 2.0},
                            {"x": RNG.standard_normal((BATCH, 5, 8), dtype="float32"),
                             "context": RNG.standard_normal((BATCH, 4, 6), dtype="float32"),
                             "context_mask": np.array([[1, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]], bool)}),
    "TransformerEncoder": ({"num_layers": 1, "num_heads": 2}, RNG.standard_normal((BATCH, 5, 8), dtype="float32")),
    "MissingModality": ({}, {"tower_out": tower_output(), "present": np.array([1, 0, 1], "float32")}),
    "ModalityDropout": ({"rate": 0.3, "seed": 1}, np.ones((BATCH, 3), "float32")),
    "GradientModulation": ({"num_modalities": 2}, {"tower_outputs": [tower_output(), tower_output()]}),
    "ImageAugmentation": ({"translate": 0.1, "flip": "horizontal", "seed": 1},
                          RNG.random((BATCH, 8, 8, 3), dtype="float32")),
    "SpecAugment": ({"seed": 1}, RNG.standard_normal((BATCH, 20, 12), dtype="float32")),
    "AudioPerturbation": ({"speed": 0.1, "pitch": 0.1, "shift": 0.1, "silence": 0.1, "gain_db": 3.0,
                           "noise_snr_db": 10.0, "seed": 1}, RNG.standard_normal((BATCH, 20, 12), dtype="float32")),
    "AudioAugmentation": ({"perturbation": {"speed": 0.1}, "spec_augment": {"time_masks": 1}, "seed": 1},
                          RNG.standard_normal((BATCH, 20, 12), dtype="float32")),
    "WordDropout": ({"rate": 0.2, "seed": 1}, TOKENS),
    "FoldWindows": ({}, RNG.standard_normal((2, 3, 5, 4), dtype="float32")),
    "WindowPooling": ({"num_windows": 3}, {"pooled": RNG.standard_normal((6, 8), dtype="float32"),
                                           "valid": np.array([[1, 1, 0], [1, 0, 0]], "float32")}),
    "BatchNormalization": ({"momentum": 0.5}, RNG.standard_normal((BATCH, 4, 4, 3), dtype="float32")),
    "GaussianEncoder": ({"latent_dim": 4, "hidden_units": 8}, RNG.standard_normal((BATCH, 8), dtype="float32")),
    "ProductOfExperts": ({}, {"means": [RNG.standard_normal((BATCH, 4), dtype="float32") for _ in range(2)],
                              "log_vars": [RNG.standard_normal((BATCH, 4), dtype="float32") for _ in range(2)],
                              "present": np.array([[1, 1], [1, 0], [0, 0]], "float32")}),
    "GaussianSample": ({"seed": 1}, {"mean": RNG.standard_normal((BATCH, 4), dtype="float32"),
                                     "log_var": RNG.standard_normal((BATCH, 4), dtype="float32")}),
    "FeatureDecoder": ({"feature_shape": [7, 6, 2], "filters": [8, 4], "standardize": True},
                       RNG.standard_normal((BATCH, 4), dtype="float32")),
    "ContrastiveHead": ({"num_modalities": 2, "dim": 4},
                        {"pooled": [RNG.standard_normal((BATCH, 8), dtype="float32") for _ in range(2)],
                         "present": np.array([[1, 1], [1, 0], [0, 1]], "float32")}),
}
