"""Files mmkeras reads on someone else's say-so: manifest paths and dataset archives.

A manifest's paths stay under its directory unless the caller opts out; a
downloaded archive is capped in size and its content verified before anything is
extracted. Everything runs on locally generated files (no network).
"""

import hashlib
import importlib
import io
import os
import zipfile

import numpy as np
import pytest

import mmkeras
from mmkeras.codecs import encode_png
from mmkeras.datasets import _download

# mmkeras.datasets.av_digits is also a function name in the package: import the module itself.
av_module = importlib.import_module("mmkeras.datasets.av_digits")


def _manifest(tmp_path, cells):
    data = tmp_path / "set"
    (data / "img").mkdir(parents=True)
    (data / "img" / "ok.png").write_bytes(encode_png(np.zeros((4, 4), np.uint8)))
    lines = ["image,label"] + [f"{c},0" for c in cells]
    (data / "m.csv").write_text("\n".join(lines) + "\n")
    return data / "m.csv"


def test_manifest_paths_resolve_under_the_manifest_directory(tmp_path):
    manifest = _manifest(tmp_path, ["img/ok.png", "./img/../img/ok.png"])
    features, _ = next(iter(mmkeras.data.from_manifest(manifest, batch_size=3)))
    assert features["image"].numpy()[0][:4] == b"\x89PNG" and features["image"].numpy()[1][:4] == b"\x89PNG"


@pytest.mark.parametrize("cell,why", [("../secret.png", "outside"), ("img/../../secret.png", "outside"),
                                      ("ABSOLUTE", "absolute path"), ("img/link.png", "outside")])
def test_manifest_paths_leaving_the_directory_name_the_row(tmp_path, cell, why):
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"top secret")
    cell = str(secret) if cell == "ABSOLUTE" else cell
    manifest = _manifest(tmp_path, ["img/ok.png", cell])
    os.symlink(secret, tmp_path / "set" / "img" / "link.png")
    with pytest.raises(ValueError, match=rf"line 3, column 'image': path .* {why}.*allow_outside=True"):
        mmkeras.data.from_manifest(manifest)
    # Opting in reads it.
    opted_in = mmkeras.data.from_manifest(manifest, batch_size=2, allow_outside=True, check_files=False)
    features, _ = next(iter(opted_in))
    assert features["image"].numpy()[1] == b"top secret"


def _zip(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_zip_members_are_capped_before_reading(tmp_path):
    path = tmp_path / "a.zip"
    path.write_bytes(_zip({"x/recordings/a.wav": b"a" * 100, "x/README": b"r", "x/recordings/b.wav": b"\0" * 5000}))
    wanted = av_module._is_recording
    got = _download.read_zip_members(path, wanted, max_members=10, max_member_bytes=10_000, max_total_bytes=10_000)
    assert got == {"x/recordings/a.wav": b"a" * 100, "x/recordings/b.wav": b"\0" * 5000}
    with pytest.raises(ValueError, match=r"member 'x/recordings/b.wav' declares 5000 bytes"):
        _download.read_zip_members(path, wanted, max_members=10, max_member_bytes=1000, max_total_bytes=10_000)
    with pytest.raises(ValueError, match="lists 3 members, more than 2"):
        _download.read_zip_members(path, wanted, max_members=2, max_member_bytes=10_000, max_total_bytes=10_000)
    with pytest.raises(ValueError, match="caps: 10000 per member, 4000 in all"):
        _download.read_zip_members(path, wanted, max_members=10, max_member_bytes=10_000, max_total_bytes=4000)
    (tmp_path / "b.zip").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="is not a zip archive"):
        _download.read_zip_members(tmp_path / "b.zip", wanted, max_members=1, max_member_bytes=1, max_total_bytes=1)


def test_download_stops_at_its_byte_cap(tmp_path):
    source = tmp_path / "big.bin"
    source.write_bytes(b"x" * 3000)
    with pytest.raises(ValueError, match="holds more than 2048 bytes"):
        _download.download_file(source.as_uri(), tmp_path / "out" / "big.bin", max_bytes=2048)
    assert list((tmp_path / "out").iterdir()) == []  # no partial file
    assert _download.download_file(source.as_uri(), tmp_path / "out" / "big.bin", max_bytes=3000).stat().st_size == 3000


def test_fsdd_archive_is_verified_before_anything_is_extracted(tmp_path, monkeypatch):
    clips = {f"{d}_x_0.wav": bytes([d]) * 50 for d in range(10)}
    archive = tmp_path / "fsdd.zip"
    archive.write_bytes(_zip({f"repo/recordings/{n}": b for n, b in clips.items()}))
    monkeypatch.setattr(av_module, "FSDD_URL", archive.as_uri())
    recordings = tmp_path / "cache" / "fsdd" / "recordings"
    with pytest.raises(ValueError, match="sha256 mismatch.*10 wav files"):
        av_module._download_fsdd(recordings)
    assert not recordings.exists() and os.listdir(recordings.parent) == []  # nothing extracted, work dir gone
    # The same archive with the digest it really has is accepted and extracted.
    digest = hashlib.sha256(b"".join(clips[n] for n in sorted(clips))).hexdigest()
    monkeypatch.setattr(av_module, "FSDD_SHA256", digest)
    av_module._download_fsdd(recordings)
    assert sorted(os.listdir(recordings)) == sorted(clips)
    # A clip over the per-member cap stops the download before extraction.
    archive.write_bytes(_zip({"repo/recordings/0_x_0.wav": b"\0" * (av_module.FSDD_MAX_CLIP_BYTES + 1)}))
    with pytest.raises(ValueError, match="0_x_0.wav"):
        av_module._download_fsdd(tmp_path / "other" / "fsdd" / "recordings")
    assert os.listdir(tmp_path / "other" / "fsdd") == []
