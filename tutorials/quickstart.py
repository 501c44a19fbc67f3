"""mmkeras quickstart: train a tri-modal model on synthetic data, compare with single
modalities, log to TensorBoard, export for TF Serving, and answer a request from raw
bytes in a fresh process that imports only TensorFlow.

It checks its own results and exits with status 1 if one is off: each single-modality
model must come within 3 points of the accuracy its modality allows by design
(image 40%, audio 30%, text 40%: `mmkeras.datasets.modality_bayes_accuracy`), and the
fused model must beat every single-modality model.

Run it (after `bash quickstart.sh` set up .venv):  .venv/bin/python tutorials/quickstart.py
Then: tensorboard --logdir logs/quickstart
"""

import argparse
import base64
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out of the tutorial

import mmkeras  # noqa: E402

P = argparse.ArgumentParser(description=__doc__.splitlines()[0])
P.add_argument("--epochs", type=int, default=8, help="epochs of the fused model")
P.add_argument("--single-epochs", type=int, default=3,
               help="epochs of each single-modality model (they plateau at their Bayes limit quickly)")
P.add_argument("--num-train", type=int, default=2000)
P.add_argument("--num-test", type=int, default=2000,
               help="test examples (2,000: the standard error of a 40%% accuracy is 1.1 points)")
P.add_argument("--tolerance", type=float, default=0.03,
               help="how far below its modality's design cap a single-modality model may score")
P.add_argument("--out", default=os.path.join(ROOT, "saved_models", "quickstart"))
P.add_argument("--logs", default=os.path.join(ROOT, "logs", "quickstart"))
A = P.parse_args()

# Reads the export with TensorFlow alone, as a serving client machine would.
FRESH_PROCESS = r"""
import base64, json, sys
import tensorflow as tf
request = json.loads(sys.argv[2])
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
out = serve(**{k: tf.constant([base64.b64decode(v)]) for k, v in request.items()})
print(json.dumps({"class": out["classes"].numpy()[0].decode(), "score": float(out["scores"].numpy().max()),
                  "present": out["present"].numpy()[0].tolist(), "mmkeras_imported": "mmkeras" in sys.modules}))
"""


def main():
    start = time.time()
    (x_train, y_train), (x_test, y_test) = mmkeras.datasets.synthetic(
        num_classes=10, num_train=A.num_train, num_test=A.num_test)
    caps = mmkeras.datasets.modality_bayes_accuracy(10)
    print(f"data: {len(y_train)} train / {len(y_test)} test tri-modal examples "
          f"(each modality alone can reach at most {caps})")

    runs = {"fused (image+audio+text)": ("image_audio_text_small", ["image", "audio", "text"]),
            "image only": ("image_small", ["image"]),
            "audio only": ("audio_small", ["audio"]),
            "text only": ("text_small", ["text"])}
    results, fused_model = {}, None
    for label, (preset, modalities) in runs.items():
        model = mmkeras.build_model(preset, num_classes=10, seed=0)
        xtr = {m: x_train[m] for m in modalities}
        xte = {m: x_test[m] for m in modalities}
        callbacks = mmkeras.callbacks.default(os.path.join(A.logs, preset)) if preset.startswith("image_audio_text") \
            else None
        t0 = time.time()
        epochs = A.epochs if callbacks else A.single_epochs
        model.fit(xtr, y_train, validation_split=0.1, epochs=epochs, verbose=2 if callbacks else 0,
                  callbacks=callbacks)
        _, acc = model.evaluate(xte, y_test, verbose=0)
        results[label] = acc
        print(f"{label:<26s} test accuracy {acc:6.2%}   ({time.time() - t0:5.1f} s, {model.count_params():,} params)")
        if callbacks:
            fused_model = model

    best_single = max(v for k, v in results.items() if not k.startswith("fused"))
    failures = []
    for modality in ("image", "audio", "text"):
        acc, cap = results[f"{modality} only"], caps[modality]
        ok = acc >= cap - A.tolerance
        print(f"check: {modality}-only {acc:.2%} vs its design cap {cap:.0%} (at least {cap - A.tolerance:.0%}): "
              f"{'ok' if ok else 'FAILED'}")
        if not ok:
            failures.append(f"{modality}-only accuracy {acc:.2%} is more than {A.tolerance:.0%} below its cap "
                            f"{cap:.0%}")
    fused = results["fused (image+audio+text)"]
    print(f"check: fused {fused:.2%} above every single-modality model (best {best_single:.2%}): "
          f"{'ok' if fused > best_single else 'FAILED'}")
    if fused <= best_single:
        failures.append(f"fused accuracy {fused:.2%} is not above the best single modality {best_single:.2%}")
    print(f"TensorBoard logs: tensorboard --logdir {A.logs}")
    print(mmkeras.evaluation.report(fused_model, x_test, y_test).to_text())

    path = mmkeras.export_saved_model(fused_model, A.out)
    print(f"exported SavedModel for TF Serving: {path}")
    request = {m: base64.b64encode(x_test[m][0] if m != "text" else x_test[m][0].encode()).decode()
               for m in ("image", "audio", "text")}
    proc = subprocess.run([sys.executable, "-c", FRESH_PROCESS, path, json.dumps(request)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"fresh-process prediction failed:\n{proc.stderr[-2000:]}")
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"fresh process (TensorFlow only) predicted class {answer['class']} (score {answer['score']:.3f}, "
          f"present={answer['present']}) for raw PNG + WAV + text; true class {y_test[0]}; "
          f"caption: {x_test['text'][0]!r}")
    print(f"quickstart finished in {time.time() - start:.0f} s")
    if failures:
        sys.exit("quickstart checks FAILED:\n  " + "\n  ".join(failures))


if __name__ == "__main__":
    main()
