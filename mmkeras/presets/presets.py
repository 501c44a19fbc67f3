"""Named presets: plain JSON-serialisable dicts of towers + fusion + heads + preprocessing.

A preset's name says which modalities it takes. ``heads`` is left out of the
dicts here: :func:`mmkeras.build_model` adds a classification head from
``num_classes`` unless the caller passes ``heads=[...]``.
"""

_SMALL_IMAGE = {"height": 32, "width": 32, "channels": 3, "resize": "crop", "normalize": "unit"}
_SMALL_AUDIO = {"sample_rate": 8000, "duration_s": 1.0, "frame_length_ms": 32.0, "frame_step_ms": 16.0,
                "n_mels": 40}
_SMALL_TEXT = {"sequence_length": 24, "vocab_size": 5000}

_IMAGE_CNN = {"type": "image/cnn", "filters": [32, 64, 96], "dim": 96, "dropout": 0.1}
_AUDIO_CNN = {"type": "audio/cnn", "filters": [32, 64, 96], "dim": 96, "dropout": 0.1}
_TEMPORAL_AUDIO_CNN = {"type": "audio/temporal_cnn", "filters": [64, 96, 128], "kernel_size": 5, "dim": 96,
                       "dropout": 0.1}
_TEXT_TRANSFORMER = {"type": "text/transformer", "dim": 64, "num_layers": 1, "num_heads": 4}

# Pretrained towers (weights installed with `mmkeras weights install NAME`): their preprocessing
# (WordPiece vocabulary and BERT normalisation; 224x224 images scaled as EfficientNet-Lite's) is implied
# by the tower, and they learn at a tenth of the rate of the new layers, after a warm-up.
_MINILM = {"type": "text/keras_hub", "preset": "minilm_l6", "start_token_id": 101, "end_token_id": 102,
           "dropout": 0.1}
_LITE0 = {"type": "image/efficientnet_lite", "weights": "efficientnet_lite0", "dropout": 0.2, "freeze_batchnorm": True}
_SPEECH = {"type": "audio/speech_embedding", "weights": "speech_embedding", "dropout": 0.1}


def _fine_tuning(*pretrained, learning_rate=1e-3, factor=0.1, warmup_steps=100):
    return {"learning_rate": learning_rate, "warmup_steps": warmup_steps,
            "learning_rate_multipliers": {m: factor for m in pretrained}}


_SPEC_AUGMENT = {"time_masks": 2, "time_mask_width": 6, "freq_masks": 2, "freq_mask_width": 5}
_IMAGE_AUGMENT = {"translate": 0.08, "rotate": 0.03}
# What `mmkeras train --augment` gives a modality whose preset has no `augment` section.
DEFAULT_AUGMENT = {"image": _IMAGE_AUGMENT, "audio": _SPEC_AUGMENT, "text": {"word_dropout": 0.1}}


def _image(tower=None, **pre):
    return {"preprocessing": {**_SMALL_IMAGE, **pre}, "tower": dict(tower or _IMAGE_CNN), "augment": None}


def _audio(tower=None, **pre):
    return {"preprocessing": {**_SMALL_AUDIO, **pre}, "tower": dict(tower or _AUDIO_CNN), "augment": None}


def _text(tower=None, **pre):
    return {"preprocessing": {**_SMALL_TEXT, **pre}, "tower": dict(tower or _TEXT_TRANSFORMER)}


PRESETS = {
    "image_audio_text_small": {
        "description": "Image CNN + audio log-mel CNN + text transformer, gated fusion (the quickstart default)",
        "modalities": {"image": _image(), "audio": _audio(), "text": _text()},
        "fusion": {"type": "fusion/gated", "dim": 96, "dropout": 0.1},
    },
    "image_audio_text_transformer_small": {
        "description": "ViT + audio transformer + text transformer, early fusion with a joint transformer",
        "modalities": {
            "image": _image({"type": "image/vit", "patch_size": 8, "dim": 64, "num_layers": 2, "num_heads": 4}),
            "audio": _audio({"type": "audio/transformer", "dim": 64, "num_layers": 2, "num_heads": 4}),
            "text": _text(),
        },
        "fusion": {"type": "fusion/transformer", "dim": 64, "num_layers": 1, "num_heads": 4},
    },
    "image_audio_text_tensor_small": {
        "description": "Image ResNet + audio BiLSTM + text BiGRU, tensor fusion (TFN)",
        "modalities": {
            "image": _image({"type": "image/resnet", "widths": [16, 32, 64], "blocks_per_stage": 1, "dim": 64}),
            "audio": _audio({"type": "audio/rnn", "dim": 64, "cell": "lstm"}),
            "text": _text({"type": "text/rnn", "dim": 64, "embedding_dim": 64, "cell": "gru"}),
        },
        "fusion": {"type": "fusion/tensor", "rank": 8, "dim": 64},
    },
    "image_audio_text_lmf_small": {
        "description": "Image CNN + audio log-mel CNN + text transformer, low-rank multimodal fusion (LMF, "
                       "rank 4): tensor fusion's uni-, bi- and trimodal terms at a cost linear in modalities",
        "modalities": {"image": _image(), "audio": _audio(), "text": _text()},
        "fusion": {"type": "fusion/lmf", "dim": 96, "rank": 4, "dropout": 0.1},
    },
    "image_audio_small": {
        "description": "Image CNN + audio log-mel CNN, late (concatenation) fusion; AV-digits default",
        "modalities": {"image": _image(), "audio": _audio()},
        "fusion": {"type": "fusion/concat", "dim": 96, "dropout": 0.1},
    },
    # The recipe of benchmarks/presets.py's av_robust_small (benchmarks/README.md, issue 24): a 5x5, four-block
    # image CNN, training-only waveform silence, an audio CNN over time only (MFCCs as channels). Leave one
    # speaker out on AV-digits (32x32 RGB images, as users' data), 3 epochs, seeds 0 / 1: fused mean 99.69 /
    # 99.64% (worst fold 99.13 / 99.11), audio alone (image removed) 82.31 / 81.08%; with the 2-D audio CNN
    # 99.57 / 99.58% (99.35 / 99.30), audio alone 65.98 / 71.79%; with the 3x3, three-block image CNN and no
    # silence too 98.13 / 98.78% (95.43 / 97.67); image-only 99.02 / 98.77%. VTLP 0.1 beside the silence (a
    # per-clip warp of the spectrum's frequency axis), the preset without it beside it in one session, seeds 0 / 1 / 2:
    # audio alone 79.34 / 80.16 / 80.49% -> 81.00 / 80.30 / 80.75%; the fused model within the spread (mean 99.75 /
    # 99.63 / 99.73% -> 99.76 / 99.76 / 99.67%, worst fold 99.52 / 99.09 / 99.48 -> 99.48 / 99.55 / 99.24).
    "image_audio_robust_small": {
        "description": "Image CNN (5x5, four blocks) + temporal audio CNN robust to new speakers: 13 MFCCs with "
                       "per-utterance CMVN, training-only waveform silence and VTLP, learned late fusion of "
                       "per-modality votes (neither modality gates the other), modality dropout 0.3, unimodal heads "
                       "(each tower also learns the task alone)",
        "modalities": {"image": {**_image({**_IMAGE_CNN, "kernel_size": 5, "filters": [32, 64, 96, 128]}),
                                 "augment": dict(_IMAGE_AUGMENT)},
                       "audio": {**_audio(_TEMPORAL_AUDIO_CNN, cmvn=True, n_mfcc=13,
                                          waveform_augment={"silence": 0.2, "vtlp": 0.1}),
                                 "augment": dict(_SPEC_AUGMENT)}},
        "fusion": {"type": "fusion/late", "dim": 96, "dropout": 0.1},
        "modality_dropout": 0.3,
        "auxiliary_heads": {"loss_weight": 1.0},
    },
    "image_audio_vae_small": {
        "description": "Multimodal VAE (MVAE): image CNN + audio log-mel CNN encoders, product of Gaussian "
                       "experts, 32-d joint latent from any subset, image and log-mel decoders (no labels)",
        "modalities": {"image": _image(), "audio": _audio()},
        "vae": {"latent_dim": 32},
    },
    "image_audio_gated_small": {
        "description": "Image CNN + audio log-mel CNN, gated (GMU) fusion",
        "modalities": {"image": _image(), "audio": _audio()},
        "fusion": {"type": "fusion/gated", "dim": 96, "dropout": 0.1},
    },
    "image_audio_attention_small": {
        "description": "Image CNN + audio log-mel CNN, attention fusion over modality vectors",
        "modalities": {"image": _image(), "audio": _audio()},
        "fusion": {"type": "fusion/attention", "dim": 96, "dropout": 0.1},
    },
    "image_text_small": {
        "description": "Image CNN + text transformer, attention fusion",
        "modalities": {"image": _image(), "text": _text()},
        "fusion": {"type": "fusion/attention", "dim": 96, "dropout": 0.1},
    },
    "audio_text_small": {
        "description": "Audio BiLSTM over log-mel frames + text BiGRU, gated fusion",
        "modalities": {
            "audio": _audio({"type": "audio/rnn", "dim": 64, "cell": "lstm"}),
            "text": _text({"type": "text/rnn", "dim": 64, "embedding_dim": 64, "cell": "gru"}),
        },
        "fusion": {"type": "fusion/gated", "dim": 64},
    },
    "image_small": {
        "description": "Image-only small CNN",
        "modalities": {"image": _image()},
        "fusion": {"type": "fusion/concat", "dim": 96, "dropout": 0.1},
    },
    "image_resnet_small": {
        "description": "Image-only small ResNet",
        "modalities": {"image": _image({"type": "image/resnet", "widths": [32, 64, 96], "dim": 96})},
        "fusion": {"type": "fusion/concat", "dim": 96, "dropout": 0.1},
    },
    "audio_small": {
        "description": "Audio-only log-mel CNN",
        "modalities": {"audio": _audio()},
        "fusion": {"type": "fusion/concat", "dim": 96, "dropout": 0.1},
    },
    "text_small": {
        "description": "Text-only Kim-style CNN (sentence classification, e.g. SST-2)",
        "modalities": {"text": _text({"type": "text/cnn", "embedding_dim": 128, "filters": 100, "dim": 128,
                                      "dropout": 0.5}, sequence_length=56, vocab_size=20000)},
        "fusion": {"type": "fusion/concat", "dim": 128, "dropout": 0.3},
    },
    "text_minilm": {
        "description": "Pretrained all-MiniLM-L6-v2 text encoder (22.7M params, WordPiece, mean pooling) "
                       "fine-tuned with a linear head (needs `mmkeras weights install minilm_l6`)",
        "modalities": {"text": {"preprocessing": {"sequence_length": 64}, "tower": dict(_MINILM)}},
        "fusion": {"type": "fusion/concat", "dim": 256, "dropout": 0.1},
        "training": _fine_tuning("text"),
    },
    "image_efficientnet_lite0": {
        "description": "Pretrained ImageNet EfficientNet-Lite0 (3.4M params, 224x224) fine-tuned with a linear "
                       "head (needs `mmkeras weights install efficientnet_lite0`)",
        "modalities": {"image": {"preprocessing": {}, "tower": dict(_LITE0), "augment": None}},
        "fusion": {"type": "fusion/concat", "dim": 256, "dropout": 0.2},
        "training": _fine_tuning("image"),
    },
    "audio_speech_embedding": {
        "description": "Pretrained Google speech_embedding keyword-spotting encoder (330k params, 16 kHz, 32 "
                       "log-mels, one 96-d token per 80 ms) fine-tuned with a linear head (needs `mmkeras weights "
                       "install speech_embedding`)",
        "modalities": {"audio": {"preprocessing": {"duration_s": 1.0}, "tower": dict(_SPEECH), "augment": None}},
        "fusion": {"type": "fusion/concat", "dim": 128, "dropout": 0.1},
        "training": _fine_tuning("audio"),
    },
    "image_audio_text_pretrained": {
        "description": "Pretrained EfficientNet-Lite0 images + audio log-mel CNN (from scratch; see "
                       "audio_speech_embedding for a pretrained one) + pretrained MiniLM text, gated fusion "
                       "(needs both weights packages)",
        "modalities": {"image": {"preprocessing": {}, "tower": dict(_LITE0), "augment": None}, "audio": _audio(),
                       "text": {"preprocessing": {"sequence_length": 32}, "tower": dict(_MINILM)}},
        "fusion": {"type": "fusion/gated", "dim": 128, "dropout": 0.1},
        "training": _fine_tuning("image", "text"),
    },
}
for _name, _preset in PRESETS.items():
    _preset["name"] = _name
