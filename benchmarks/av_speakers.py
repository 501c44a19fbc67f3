"""AV-digits with a speaker the model never heard: leave-one-speaker-out over the six FSDD speakers.

One command (from the repository root)::

    .venv/bin/python benchmarks/av_speakers.py                       # priority runs, 3 epochs, every fold
    .venv/bin/python benchmarks/av_speakers.py --runs ablation --folds george theo --resume

A fold holds one speaker out. Training pairs are the ``small`` AV-digits train
split (the first 10,000 MNIST train images, in order) with clips drawn exactly as
the shared data README's protocol, but from the other five speakers' train clips
(index 5..49) only; test pairs are the first 10,000 MNIST test images with the
held-out speaker's test clips (index 0..4), drawn the same way
(``mmkeras.datasets.av_digits_pairs(..., speakers=...)``). Two more folds use the
standard protocol, for the "no loss where nothing shifted" targets: ``seen``
(every speaker, clean) and ``noisy`` (the noisy variant).

Features are computed once per clip (and per image), cached on disk, and paired
per fold, so every run of a fold sees the same inputs. The image-only model does
not depend on the speakers, so it trains once per epoch count and is reported in
every speaker fold. A ``waveform`` run (audio option ``waveform_augment``, training only; so
``av_robust_small``) trains on the raw pairs instead (PNG and WAV bytes, the clips perturbed afresh
every epoch), and is tested on the same cached features (the option leaves evaluation features
unchanged). Each fused model is also
scored with one modality removed (zeros and ``present`` 0, the serving contract of an empty input).

Results go to ``benchmarks/results/av_speakers.json`` and ``.md`` after every run
(atomic writes), so a cut-short run leaves a partial table; ``--resume`` keeps
what is there and does only the missing runs.
"""

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mmkeras  # noqa: E402
from benchmarks import common  # noqa: E402
from benchmarks._speakers_report import write_markdown  # noqa: E402
from benchmarks.av_digits import removal_accuracies, train_classifier  # noqa: E402
from mmkeras.datasets.av_digits import av_digits_pairs, load_fsdd  # noqa: E402

SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
EXTRA_FOLDS = ("seen", "noisy")  # the standard protocol: every speaker, clean / noisy variant
# Image-only runs do not depend on the fold's speakers: trained once for every speaker fold.
SHARED_RUNS = ("image_only", "image_only_robust", "library_image", "library_image_k5")
_CMVN = {"preprocessing": {"cmvn": True}}


def _audio(**augment):
    """Overrides: CMVN audio features and the given augmentation options (on top of the preset's SpecAugment)."""
    return {"modalities": {"audio": {**_CMVN, **({"augment": augment} if augment else {})}}}


def _wave(base=None, **options):
    """Overrides: ``base`` audio preprocessing (default CMVN log-mel) plus training-only ``waveform_augment``
    (on top of the preset's SpecAugment); the model trains on raw clips, perturbed afresh every epoch."""
    return {"modalities": {"audio": {"preprocessing": {**(base or _CMVN["preprocessing"]),
                                                       "waveform_augment": options}}}}


_MFCC_CMVN = {"cmvn": True, "n_mfcc": 13}
# Moderate draws of the waveform perturbations at once, on the best audio path (13 MFCC + CMVN). Without
# shift: alone it took log-mel + CMVN from 42% to 18% on george (the leading digital silence it adds
# counts in CMVN's statistics; the test clips have none), benchmarks/results/av_speakers_waveform.md.
_WAVE_ALL = {"speed": 0.1, "pitch": 0.1, "silence": 0.1, "gain_db": 6.0, "noise_snr_db": 15.0}

# Each perturbation alone (run name -> option, strength), the same strengths in the feature domain
# (audio ``augment``) and on the waveform (``waveform_augment``), so the two ablations compare alike.
_ONE_AT_A_TIME = {"speed": ("speed", 0.15), "pitch": ("pitch", 0.12), "shift": ("shift", 0.15),
                  "gain": ("gain_db", 6.0), "noise": ("noise_snr_db", 10.0), "silence": ("silence", 0.2)}

_PRETRAINED_TRAINING = {"training": {"learning_rate_multipliers": {"audio": 0.1}, "warmup_steps": 100}}
_PRETRAINED = {"modalities": {"audio": "audio_speech_embedding"}, **_PRETRAINED_TRAINING}

_LIBRARY_K5 = {"tower": {"kernel_size": 5, "filters": [32, 64, 96, 128]}}
_LIBRARY_2D_AUDIO = {"tower": {"type": "audio/cnn", "filters": [32, 64, 96], "kernel_size": 3}}  # until fd3c0ad
_LIBRARY_AUGMENT = mmkeras.presets.get_preset("image_audio_robust_small")["modalities"]["image"]["augment"]

# run name -> (preset, build_model overrides). Audio ablations are audio-only models (what the audio
# options are for); each augmentation is measured alone, on top of CMVN.
RUNS = {
    "image_only": ("av_image_small", {}),
    # The image-only baseline with the robust preset's (stronger) image tower: the fair single modality.
    "image_only_robust": ("av_image_small", {"modalities": {"image": "av_robust_small"}}),
    # Cheaper image towers for av_robust_small (its training time): four 3x3 blocks; 5x5 only in the first.
    "image_only_k3_4blk": ("av_image_small", {"modalities": {"image": {"tower": {"filters": [16, 32, 64, 128]}}}}),
    "audio_only": ("av_audio_small", {}),
    "fusion_concat": ("av_concat_small", {}),
    "fusion_robust": ("av_robust_small", {}),
    "audio_robust": ("av_audio_small", {"modalities": {"audio": "av_robust_small"}}),
    "fusion_gated": ("av_gated_small", {}),
    "audio_cmvn": ("av_audio_small", _audio()),
    "audio_mfcc_cmvn": ("av_audio_small", {"modalities": {"audio": {"preprocessing": _MFCC_CMVN}}}),
    **{f"audio_cmvn_{run}": ("av_audio_small", _audio(**{key: value}))
       for run, (key, value) in _ONE_AT_A_TIME.items()},
    # The same perturbations on the waveform (mmkeras.preprocessing.waveform_augment), one at a time.
    **{f"audio_cmvn_wave_{run}": ("av_audio_small", _wave(**{key: value}))
       for run, (key, value) in _ONE_AT_A_TIME.items()},
    "audio_mfcc_cmvn_wave": ("av_audio_small", _wave(_MFCC_CMVN, **_WAVE_ALL)),
    "audio_mfcc_cmvn_wave_pitch": ("av_audio_small", _wave(_MFCC_CMVN, pitch=0.12)),
    "audio_mfcc_cmvn_wave_silence": ("av_audio_small", _wave(_MFCC_CMVN, silence=0.2)),
    "audio_mfcc_cmvn_wave_noise": ("av_audio_small", _wave(_MFCC_CMVN, noise_snr_db=15.0)),
    # The two that helped alone on the MFCC path (pitch, silence), together.
    "audio_mfcc_cmvn_wave_pitch_silence": ("av_audio_small", _wave(_MFCC_CMVN, pitch=0.12, silence=0.2)),
    "fusion_late": ("av_concat_small", {"fusion": {"type": "fusion/late"}}),
    "fusion_concat_dropout": ("av_concat_small", {"modality_dropout": 0.3}),
    "fusion_late_dropout": ("av_concat_small", {"fusion": {"type": "fusion/late"}, "modality_dropout": 0.3}),
    "fusion_concat_robust_audio": ("av_concat_small", {"modalities": {"audio": "av_robust_small"}}),
    # Unimodal supervision: each modality's tower also trains its own copy of the head (auxiliary_heads).
    # av_robust_small has it since this ablation; fusion_robust_no_aux is the preset as it was before.
    "fusion_robust_no_aux": ("av_robust_small", {"auxiliary_heads": None}),
    "fusion_robust_aux": ("av_robust_small", {"auxiliary_heads": {"loss_weight": 1.0}}),
    "fusion_concat_robust_audio_aux_dropout": ("av_concat_small", {"modalities": {"audio": "av_robust_small"},
                                                                   "auxiliary_heads": {"loss_weight": 1.0},
                                                                   "modality_dropout": 0.3}),
    "fusion_concat_aux": ("av_concat_small", {"auxiliary_heads": {"loss_weight": 1.0}}),
    "fusion_robust_aux_no_dropout": ("av_robust_small", {"auxiliary_heads": {"loss_weight": 1.0},
                                                         "modality_dropout": 0.0}),
    "fusion_robust_aux_half": ("av_robust_small", {"auxiliary_heads": {"loss_weight": 0.5}}),
    "fusion_concat_robust_audio_aux": ("av_concat_small", {"modalities": {"audio": "av_robust_small"},
                                                           "auxiliary_heads": {"loss_weight": 1.0}}),
    # Gradient modulation (OGM, issue 24 item 3): av_robust_small, whose unimodal heads it reads, with the
    # fused-path gradient of the modality ahead (the image) scaled down each step.
    "fusion_robust_aux_ogm": ("av_robust_small", {"gradient_modulation": {"alpha": 0.5}}),
    # The optimizer's exponential moving average of the weights (Keras' use_ema, momentum 0.99: about the
    # last 100 steps), swapped in at the end of fit: a 3-epoch fit ends on a noisy point.
    "fusion_robust_ema": ("av_robust_small", {"training": {"optimizer": {
        "class_name": "AdamW", "config": {"use_ema": True, "ema_momentum": 0.99}}}}),
    # Vocal tract length perturbation (Jaitly & Hinton 2013; waveform_augment vtlp): the spectrum's frequency axis
    # warped by a factor in [0.9, 1.1] per example before the mel filterbank, beside the silence: another
    # speaker's formants, the pitch and tempo kept (speed perturbation changes all three and cost audio alone).
    "fusion_robust_vtlp": ("av_robust_small", _wave(_MFCC_CMVN, silence=0.2, vtlp=0.1)),
    "fusion_robust_vtlp_02": ("av_robust_small", _wave(_MFCC_CMVN, silence=0.2, vtlp=0.2)),
    "fusion_robust_aux_ogm_01": ("av_robust_small", {"gradient_modulation": {"alpha": 0.1}}),
    # The one waveform perturbation that helped audio alone on the MFCC path (silence, 75.6% -> 83.1% on
    # george / jackson), in the fused robust preset; trains on raw PNG + WAV bytes. It won (benchmarks/
    # README.md), so av_robust_small has it since and this run is the same as fusion_robust.
    "fusion_robust_wave_silence": ("av_robust_small", _wave(_MFCC_CMVN, silence=0.2)),
    # The same silence in the feature domain (AudioPerturbation on the MFCC frames, inside the model): the
    # features are then computed once, as without augmentation, instead of every epoch.
    "fusion_robust_feature_silence": ("av_robust_small", {"modalities": {"audio": {
        "preprocessing": {"waveform_augment": None}, "augment": {"silence": 0.2}}}}),
    # The pretrained speech_embedding tower (library preset audio_speech_embedding), fine-tuned at 0.1x.
    "audio_pretrained": ("av_audio_small", _PRETRAINED),
    "fusion_pretrained": ("av_concat_small", _PRETRAINED),
    # The library presets users get (32x32 RGB images; run with --raw-test): the robust one as shipped, its
    # same-tower image-only model, and both with av_robust_small's two changes (a 5x5 four-block image
    # tower; training-only waveform silence). Since 6128ede the preset has both; the runs that name an older
    # preset pin its towers.
    "library_image": ("image_small", {"modalities": {"image": "image_audio_robust_small"}}),
    # As shipped (until 6128ede: 3x3 CNN, no silence; until fd3c0ad: the 2-D audio CNN).
    "library_robust": ("image_audio_robust_small", {}),
    "library_robust_before": ("image_audio_robust_small", {"modalities": {  # the preset before 6128ede
        "image": {"tower": {"kernel_size": 3, "filters": [32, 64, 96]}},
        "audio": {**_LIBRARY_2D_AUDIO, "preprocessing": {"waveform_augment": None}}}}),
    "library_image_k5": ("image_small", {"modalities": {"image": {**_LIBRARY_K5, "augment": _LIBRARY_AUGMENT}}}),
    # The library preset with av_robust_small's temporal audio CNN (MFCCs as channels; 78-81% audio alone
    # there against 66-72% with the preset's 2-D audio CNN). Since fd3c0ad the preset has it
    # (82.31 / 81.08% audio alone): this run equals library_robust.
    "library_robust_temporal": ("image_audio_robust_small", {"modalities": {"audio": {"tower": {
        "type": "audio/temporal_cnn", "filters": [64, 96, 128], "kernel_size": 5}}}}),
    # Speed perturbation (Kaldi's 0.9-1.1: tempo and pitch together, as another speaker's vocal tract and pace)
    # beside the silence, for audio alone on a new speaker (82.31 / 81.08% with the silence alone).
    "library_robust_speed": ("image_audio_robust_small", {"modalities": {"audio": {"preprocessing": {
        "waveform_augment": {"silence": 0.2, "speed": 0.1}}}}}),
    # SpecAugment's frequency masks were sized for 40 log-mel bands (two of up to 5): on 13 MFCCs they hide
    # about 5 of the 13 coefficients. Two of up to 2 instead.
    "library_robust_mfcc_masks": ("image_audio_robust_small", {"modalities": {"audio": {"augment": {
        "freq_mask_width": 2}}}}),
    # Narrower masks cost audio alone about 5 points (seed 0): the other way, three masks of up to 5.
    "library_robust_mfcc_masks3": ("image_audio_robust_small", {"modalities": {"audio": {"augment": {
        "freq_masks": 3}}}}),
    # VTLP beside the silence (as fusion_robust_vtlp in av_robust_small). It won (benchmarks/README.md): since
    # a7db962 the preset has it, so this run equals library_robust, and library_robust_silence is the preset before.
    "library_robust_vtlp": ("image_audio_robust_small", {"modalities": {"audio": {"preprocessing": {
        "waveform_augment": {"silence": 0.2, "vtlp": 0.1}}}}}),
    "library_robust_silence": ("image_audio_robust_small", {"modalities": {"audio": {"preprocessing": {
        "waveform_augment": {"silence": 0.2}}}}}),
    "library_robust_k5_silence": ("image_audio_robust_small", {"modalities": {  # the preset from 6128ede to fd3c0ad
        "image": _LIBRARY_K5,
        "audio": {**_LIBRARY_2D_AUDIO, "preprocessing": {"waveform_augment": {"silence": 0.2}}}}}),
}
PRIORITY = ["image_only", "image_only_robust", "audio_only", "fusion_concat", "fusion_robust", "audio_robust"]
ABLATION = ["audio_cmvn", "audio_mfcc_cmvn", "audio_cmvn_pitch", "audio_cmvn_speed", "fusion_late",
            "fusion_concat_dropout", "audio_cmvn_shift", "audio_cmvn_silence", "audio_cmvn_noise", "audio_cmvn_gain",
            "fusion_late_dropout", "fusion_concat_robust_audio"]
PRETRAINED = ["audio_pretrained", "fusion_pretrained"]
WAVEFORM = ["audio_mfcc_cmvn_wave", "audio_cmvn_wave_noise", "audio_cmvn_wave_speed", "audio_cmvn_wave_pitch",
            "audio_cmvn_wave_shift", "audio_cmvn_wave_silence", "audio_cmvn_wave_gain", "audio_mfcc_cmvn_wave_pitch",
            "audio_mfcc_cmvn_wave_silence", "audio_mfcc_cmvn_wave_noise", "audio_mfcc_cmvn_wave_pitch_silence"]
AUXILIARY = ["fusion_robust_no_aux", "fusion_robust_aux", "fusion_concat_robust_audio_aux", "fusion_concat_aux",
             "fusion_robust_aux_no_dropout", "fusion_robust_aux_half", "fusion_concat_robust_audio_aux_dropout"]
GRADIENT_MODULATION = ["fusion_robust_aux_ogm", "fusion_robust_aux_ogm_01"]
RUN_GROUPS = {"priority": PRIORITY, "ablation": ABLATION, "pretrained": PRETRAINED, "waveform": WAVEFORM,
              "auxiliary": AUXILIARY, "gradient_modulation": GRADIENT_MODULATION, "none": []}


def resolve_overrides(overrides):
    """``{"modalities": {"audio": "<preset>"}}`` takes that preset's whole audio spec (the robust audio path)."""
    overrides = json.loads(json.dumps(overrides))
    for m, spec in overrides.get("modalities", {}).items():
        if isinstance(spec, str):
            spec = mmkeras.presets.get_preset(spec)["modalities"][m]
            # What its tower implies, spelt out: merged into the base preset, whose own values would win.
            overrides["modalities"][m] = {**spec, "preprocessing": mmkeras.towers.modality_preprocessing(spec)}
    return overrides


def _robust_pretrained():
    """av_robust_small's recipe (late fusion, modality dropout, unimodal heads) with the pretrained
    speech_embedding tower as its audio: the tower's implied front end replaces the MFCC + CMVN path, and
    no waveform silence (the features are then cached, as the tower's fine-tuning runs had them)."""
    overrides = resolve_overrides({"modalities": {"audio": "audio_speech_embedding"}, **_PRETRAINED_TRAINING})
    overrides["modalities"]["audio"]["preprocessing"].update({"cmvn": False, "n_mfcc": None, "waveform_augment": None})
    return overrides


# docs/pretrained.md: "late fusion with modality dropout (image_audio_robust_small's recipe) is the next thing
# to try" for the pretrained audio tower, whose concatenation with the image did harm.
RUNS["fusion_robust_pretrained"] = ("av_robust_small", _robust_pretrained())


def _tag(audio_pre):
    """Cache name of an audio preprocessing config: a readable part and a hash of the whole config (two runs
    that differ in any option, e.g. ``n_mels``, get their own features)."""
    digest = hashlib.sha256(json.dumps(audio_pre, sort_keys=True).encode()).hexdigest()[:10]
    return (("cmvn" if audio_pre.get("cmvn") else "plain")
            + (f"_mfcc{audio_pre['n_mfcc']}" if audio_pre.get("n_mfcc") else "")
            + (f"_{audio_pre['frontend']}" if audio_pre.get("frontend") else "") + f"_{digest}")


class Features:
    """Per-clip audio and per-image features, computed once (per audio preprocessing config) and cached."""

    def __init__(self, args):
        self.args, self.cache = args, Path(args.cache_dir)
        self.memory = {}

    def _cached(self, key, compute):
        if key not in self.memory:
            path = self.cache / f"av_speakers_{key}.npz"
            if path.exists():
                self.memory[key] = dict(np.load(path))
            else:
                with common.Timer() as t:
                    self.memory[key] = compute()
                print(f"[features] {key}: {t.seconds:.0f}s", flush=True)
                path.parent.mkdir(parents=True, exist_ok=True)
                np.savez(path, **self.memory[key])
        return self.memory[key]

    def _preprocess(self, preset, x, audio_pre=None):
        overrides = {"modalities": {"audio": {"preprocessing": audio_pre}}} if audio_pre else {}
        model = mmkeras.build_model(preset, num_classes=10, compile=False, **overrides)
        return model.preprocess(x, batch_size=256)

    def images(self, split, variant="clean"):
        def compute():
            x, _ = mmkeras.datasets.av_digits(split, variant, "small", data_dir=self.args.data_dir)
            return {"image": self._preprocess("av_image_small", {"image": x["image"]})["image"]}
        return self._cached(f"image_{variant}_{split}", compute)["image"]

    def clips(self, audio_pre):
        """``(names, features [3000, T, F])`` of every FSDD clip under ``audio_pre``."""
        tag = _tag(audio_pre)
        clips = load_fsdd(self.args.data_dir)
        names = list(clips)

        def compute():
            wavs = np.empty(len(names), dtype=object)
            wavs[:] = [clips[n] for n in names]
            return {"audio": self._preprocess("av_audio_small", {"audio": wavs}, audio_pre)["audio"]}
        return names, self._cached(f"clips_{tag}", compute)["audio"]

    def noisy_audio(self, split, audio_pre):
        tag = _tag(audio_pre)

        def compute():
            x, _ = mmkeras.datasets.av_digits(split, "noisy", "small", data_dir=self.args.data_dir)
            return {"audio": self._preprocess("av_audio_small", {"audio": x["audio"]}, audio_pre)["audio"]}
        return self._cached(f"audio_noisy_{tag}_{split}", compute)["audio"]

    def fold(self, fold, audio_pre, raw=False, raw_test=False):
        """``{"train": (None, y, features), "test": ...}`` of one fold, in the av_digits benchmark's layout.

        With a training-only ``waveform_augment`` the training split is ``({"image": PNG bytes, "audio": WAV
        bytes}, y, None)``: the model computes (and perturbs) its features every epoch. Test features are
        the cached ones, which the option does not change. ``raw`` trains every run on the raw pairs (what a
        user's ``fit`` on PNG/WAV bytes costs: without a raw augmentation it preprocesses them once);
        ``raw_test`` gives the test split raw too, ``(x, y, None)``, for presets whose preprocessing differs
        from the cached features' (the library presets: 32x32 RGB images).
        """
        raw_train = raw or bool(audio_pre.get("waveform_augment"))
        audio_pre = {k: v for k, v in audio_pre.items() if k != "waveform_augment"}
        data = {}
        for split in ("train", "test"):
            variant, speakers = ("noisy" if fold == "noisy" else "clean"), None
            if fold == "noisy":
                _, y = mmkeras.datasets.av_digits(split, "noisy", "small", data_dir=self.args.data_dir)
                image, audio = self.images(split, "noisy"), self.noisy_audio(split, audio_pre)
            else:
                speakers = None if fold == "seen" else (
                    [s for s in SPEAKERS if s != fold] if split == "train" else [fold])
                pairs = av_digits_pairs(split, "small", self.args.data_dir, speakers=speakers)
                names, clip_features = self.clips(audio_pre)
                row = {n: i for i, n in enumerate(names)}
                y = np.array([label for _, _, label in pairs], dtype=np.int64)
                image = self.images(split)
                audio = clip_features[[row[name] for _, name, _ in pairs]]
            features = {"image": image, "audio": audio, "present": np.ones((len(y), 2), "float32")}
            limit = self.args.limit or len(y)
            features, y = {k: v[:limit] for k, v in features.items()}, y[:limit]
            if (raw_train and split == "train") or (raw_test and split == "test"):
                # Raw PNG and WAV bytes of the same pairs: a fused model preprocesses both every epoch.
                x_raw, y_raw = mmkeras.datasets.av_digits(split, variant, "small", data_dir=self.args.data_dir,
                                                          speakers=speakers)
                assert np.array_equal(y_raw[:limit], y), "av_digits and av_digits_pairs disagree on the pairs"
                data[split] = ({m: x_raw[m][:limit] for m in ("image", "audio")}, y, None)
                continue
            data[split] = (None, y, features)
        return data


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folds", nargs="+", default=list(SPEAKERS), choices=list(SPEAKERS) + list(EXTRA_FOLDS),
                        help="held-out speakers (default: all six), and/or the standard-protocol folds 'seen' "
                             "(clean, every speaker) and 'noisy'")
    parser.add_argument("--runs", nargs="+", default=["priority"], choices=list(RUNS) + list(RUN_GROUPS),
                        help="runs (or groups: priority = " + ", ".join(PRIORITY) + "; ablation = "
                             + ", ".join(ABLATION) + "; waveform = " + ", ".join(WAVEFORM) + ")")
    parser.add_argument("--epochs", nargs="+", type=int, default=[3])
    parser.add_argument("--batch-size", type=int, default=0, help="default: the preset's (64)")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N pairs of each split (smoke test)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--raw-train", action="store_true",
                        help="train every run on the raw PNG/WAV pairs, as a user's fit would (for train times)")
    parser.add_argument("--raw-test", action="store_true",
                        help="test on the raw pairs with each model's own preprocessing (library presets)")
    parser.add_argument("--data-dir", default=common.default_data_dir())
    parser.add_argument("--cache-dir", default=str(common.REPO / "benchmarks" / ".cache"))
    parser.add_argument("--out", default=str(common.REPO / "benchmarks" / "results" / "av_speakers"))
    parser.add_argument("--resume", action="store_true", help="keep the results file's runs, do only missing ones")
    parser.add_argument("--redo", action="store_true", help="with --resume: redo the runs asked for")
    parser.add_argument("--merge", nargs="+", default=[], metavar="JSON",
                        help="results files of other invocations (run side by side) to merge in: their runs fill "
                             "the ones this file lacks, their commands are listed; with --runs none, only merges")
    args = parser.parse_args(argv)
    runs = list(dict.fromkeys(name for run in args.runs for name in RUN_GROUPS.get(run, [run])))

    import keras

    keras.utils.set_random_seed(args.seed)
    out = Path(args.out)
    command = "python benchmarks/av_speakers.py " + " ".join(argv if argv is not None else sys.argv[1:])
    results = {"benchmark": "av_speakers", "commands": [command], "size": "small", "limit": args.limit or None,
               "machine": common.machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "results": {}}
    if args.resume and out.with_suffix(".json").exists():
        old = json.loads(out.with_suffix(".json").read_text())
        results.update(results=old["results"], started=old["started"], commands=old["commands"] + [command],
                       earlier_machines=old.get("earlier_machines", []) + [old["machine"]])
    for other in args.merge:
        old = json.loads(Path(other).read_text())
        for epochs, folds in old["results"].items():
            for fold, records in folds.items():
                for name, record in records.items():
                    results["results"].setdefault(epochs, {}).setdefault(fold, {}).setdefault(name, record)
        results["commands"] = results["commands"][:-1] + old["commands"] + results["commands"][-1:]
        results.setdefault("earlier_machines", []).append(old["machine"])
    start = time.perf_counter()

    def save():
        results["updated"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        results["session_seconds"] = round(time.perf_counter() - start, 1)
        common.write_json(out.with_suffix(".json"), results)
        write_markdown(results, out.with_suffix(".md"), RUNS)

    features = Features(args)
    done = set()  # (fold, run) trained in this session: a shared run trains once for every speaker fold
    for epochs in args.epochs:
        table = results["results"].setdefault(str(epochs), {})
        for fold in args.folds:
            for name in runs:
                key = "any_speaker" if name in SHARED_RUNS and fold in SPEAKERS else fold
                if (key, name) in done or (name in table.get(key, {}) and not args.redo):
                    continue
                done.add((key, name))
                preset, overrides = RUNS[name]
                overrides = resolve_overrides(overrides)
                audio_spec = overrides.get("modalities", {}).get("audio", {})
                audio_pre = {**mmkeras.presets.get_preset(preset)["modalities"].get("audio", {}).get(
                    "preprocessing", {}), **audio_spec.get("preprocessing", {})}
                data = features.fold(fold, audio_pre, raw=args.raw_train or args.raw_test, raw_test=args.raw_test)
                print(f"=== {epochs} epochs / {key} / {name} ({preset})", flush=True)
                model, record = train_classifier(preset, data, args, epochs, **overrides)
                record.update(removal_accuracies(model, data["test"][2], data["test"][1]), overrides=overrides)
                if getattr(model, "gradient_modulation", None) is not None:  # the last step's k per modality
                    record["gradient_coefficients"] = dict(zip(model.modalities, np.asarray(
                        model.gradient_modulation.coefficients).round(4).tolist()))
                table.setdefault(key, {})[name] = record
                print(f"    test accuracy {record['test_accuracy']:.4f} ({record['train_seconds']}s) "
                      + " ".join(f"{k[14:]} {v:.4f}" for k, v in record.items() if k.endswith("_removed")), flush=True)
                keras.backend.clear_session()
                save()
    results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    results["machine"]["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    save()


if __name__ == "__main__":
    main()
