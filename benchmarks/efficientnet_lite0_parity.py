"""EfficientNet-Lite0: mmkeras's Keras tower with the converted weights vs the original PyTorch network.

The PyTorch side runs in a separate interpreter (``--torch-python``) that has
``torch`` and ``efficientnet_lite_pytorch`` (the port the weights were published
for); mmkeras never imports PyTorch. Both networks see the same float inputs:

- the first ``--mnist`` MNIST test digits, upsampled 8x (28 -> 224, nearest, exact in numpy);
- ``grace_hopper.jpg`` from matplotlib's sample data (a photograph of a person in
  US Navy uniform; ImageNet class 652 is "military uniform");
- ``--random`` images of random 8x8 colour blocks upsampled 28x.

Pixels are scaled as the TensorFlow original, ``(x - 127) / 128``. Reported: max
absolute logit difference, top-1 and top-5 agreement, and the top-5 classes of the
photograph under that scaling and under ImageNet mean/std. ``--fixture`` also writes
the CI regression fixture (first 4 digits and 4 random images, their PyTorch logits).

Setup of the reference interpreter (PyTorch for this check only)::

    python -m venv /tmp/torchenv
    /tmp/torchenv/bin/pip install torch==2.13.0 numpy
    /tmp/torchenv/bin/pip install --no-deps efficientnet-lite-pytorch==0.1.0

Usage: python benchmarks/efficientnet_lite0_parity.py --torch-python /tmp/torchenv/bin/python [--fixture]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "efficientnet_lite0_reference.npz"
MILITARY_UNIFORM = 652

REFERENCE = """
import sys, numpy as np, torch
from efficientnet_lite_pytorch import EfficientNet
torch.set_num_threads(2)
net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=sys.argv[1]).eval()
x = np.load(sys.argv[2])["images"]
with torch.no_grad():
    logits = torch.cat([net(torch.from_numpy(x[i:i + 16]).permute(0, 3, 1, 2)) for i in range(0, len(x), 16)])
np.save(sys.argv[3], logits.numpy())
print("torch", torch.__version__)
"""


def scale_tf(pixels):
    """The TensorFlow EfficientNet-Lite input scaling: ``(x - 127) / 128``."""
    return ((np.asarray(pixels, np.float32) - 127.0) / 128.0).astype(np.float32)


def scale_imagenet(pixels):
    mean, std = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)
    return ((np.asarray(pixels, np.float32) / 255.0 - mean) / std).astype(np.float32)


def mnist_rgb(digits):
    """``[N, 28, 28]`` uint8 -> ``[N, 224, 224, 3]`` pixels (nearest 8x, gray repeated)."""
    big = np.repeat(np.repeat(digits, 8, axis=1), 8, axis=2)
    return np.repeat(big[..., None], 3, axis=-1)


def block_images(blocks):
    """``[N, 8, 8, 3]`` uint8 -> ``[N, 224, 224, 3]`` pixels (nearest 28x)."""
    return np.repeat(np.repeat(blocks, 28, axis=1), 28, axis=2)


def photograph():
    import matplotlib
    from PIL import Image

    img = Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg").convert("RGB")
    side = min(img.size)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    return np.asarray(img.crop((left, top, left + side, top + side)).resize((224, 224), Image.BILINEAR))


def keras_logits(images):
    from mmkeras.towers import ImageEfficientNetLite
    from mmkeras.weights.efficientnet_lite import load_efficientnet_lite0

    tower = ImageEfficientNetLite(drop_connect_rate=0.0)
    tower.build((None, 224, 224, 3))
    fc = load_efficientnet_lite0(tower, "efficientnet_lite0")
    pooled = np.concatenate([np.asarray(tower(images[i:i + 16], training=False)["pooled"])
                             for i in range(0, len(images), 16)])
    return pooled @ fc["kernel"] + fc["bias"]


def torch_logits(torch_python, images):
    from mmkeras.weights import weights_file

    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "x.npz", images=images)
        done = subprocess.run([torch_python, "-c", REFERENCE, str(weights_file("efficientnet_lite0")),
                               str(Path(tmp) / "x.npz"), str(Path(tmp) / "y.npy")],
                              capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"reference failed:\n{done.stderr[-3000:]}")
        return np.load(Path(tmp) / "y.npy"), done.stdout.strip()


def top(logits, k):
    return np.argsort(-logits, axis=-1)[:, :k]


def compare(a, b):
    top5_a, top5_b = top(a, 5), top(b, 5)
    return {"max_abs_logit_diff": float(np.max(np.abs(a - b))),
            "max_abs_logit": float(np.max(np.abs(b))),
            "top1_agreement": float(np.mean(top5_a[:, 0] == top5_b[:, 0])),
            "top5_set_agreement": float(np.mean([set(x) == set(y) for x, y in zip(top5_a, top5_b)]))}


def softmax(z):
    z = np.exp(z - z.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--torch-python", required=True, help="interpreter with torch + efficientnet_lite_pytorch")
    p.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    p.add_argument("--mnist", type=int, default=48)
    p.add_argument("--random", type=int, default=8)
    p.add_argument("--fixture", action="store_true", help="also rewrite the CI fixture " + str(FIXTURE))
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "efficientnet_lite0_parity.json"))
    args = p.parse_args(argv)

    digits = np.load(Path(args.data_dir) / "mnist" / "mnist.npz")["x_test"][: args.mnist]
    blocks = np.random.default_rng(0).integers(0, 256, (args.random, 8, 8, 3), dtype=np.uint8)
    photo = photograph()
    pixels = np.concatenate([mnist_rgb(digits), photo[None], block_images(blocks)])
    images = np.concatenate([scale_tf(pixels), scale_imagenet(photo[None])])  # last: photo, ImageNet scaling

    start = time.perf_counter()
    reference, torch_version = torch_logits(args.torch_python, images)
    torch_s = time.perf_counter() - start
    start = time.perf_counter()
    ours = keras_logits(images)
    keras_s = time.perf_counter() - start

    n = len(digits)
    groups = {"all": slice(0, len(images)), "mnist": slice(0, n), "photograph": slice(n, n + 1),
              "random_blocks": slice(n + 1, n + 1 + len(blocks))}
    photo_top5 = {name: {"indices": top(logits[i:i + 1], 5)[0].tolist(),
                         "probabilities": np.round(softmax(logits[i])[top(logits[i:i + 1], 5)[0]], 4).tolist()}
                  for name, logits, i in (("keras_tf_scaling", ours, n), ("torch_tf_scaling", reference, n),
                                          ("keras_imagenet_scaling", ours, len(images) - 1))}
    result = {
        "what": "mmkeras image/efficientnet_lite0 + converted weights vs efficientnet_lite_pytorch 0.1.0 "
                "(EfficientNet.from_pretrained('efficientnet-lite0'), eval mode), same float inputs, 224x224",
        "inputs": {"mnist_test_digits": n, "photograph": "matplotlib sample_data/grace_hopper.jpg (centre crop)",
                   "random_8x8_blocks": len(blocks), "photograph_imagenet_scaled": 1},
        "comparison": {name: compare(ours[s], reference[s]) for name, s in groups.items()},
        "photograph_top5": photo_top5,
        "military_uniform_class": MILITARY_UNIFORM,
        "seconds": {"torch_reference": round(torch_s, 1), "keras": round(keras_s, 1)},
        "versions": {"torch": torch_version},
        "command": "python benchmarks/efficientnet_lite0_parity.py --torch-python " + args.torch_python
                   + (" --fixture" if args.fixture else ""),
    }
    from benchmarks.common import machine, write_json

    result["machine"] = machine()
    write_json(args.out, result)
    print(json.dumps({k: result[k] for k in ("comparison", "photograph_top5", "seconds")}, indent=1))
    if args.fixture:
        keep = list(range(4)) + list(range(n + 1, n + 5))
        np.savez_compressed(FIXTURE, digits=digits[:4], blocks=blocks[:4],
                            logits=reference[keep].astype(np.float32))
        print("wrote", FIXTURE)


if __name__ == "__main__":
    main()
