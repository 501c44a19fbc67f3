"""Python-side checks of image and audio files, before any of them reaches a TF graph.

The in-graph checks (``mmkeras.preprocessing``) are the ones serving relies on;
these cheap ones read a file's first and last bytes so that a manifest's bad file
is reported with its path and row before training starts, and so that the CLI can
tell which modality a file on the command line is.
"""

import os

IMAGE_FORMATS = "PNG, JPEG, BMP or GIF"
_IMAGE_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF87a", "GIF"),
                     (b"GIF89a", "GIF"), (b"BM", "BMP"))
_OTHER_SIGNATURES = ((b"ID3", "an MP3 file (ID3 tag)"), (b"\xff\xfb", "an MP3 file"), (b"\xff\xf3", "an MP3 file"),
                     (b"fLaC", "a FLAC file"), (b"OggS", "an Ogg file"), (b"RIFF", "a RIFF file"),
                     (b"%PDF", "a PDF file"), (b"PK\x03\x04", "a ZIP archive"))


def sniff(head):
    """What the leading bytes of a file are: ``"image"``, ``"audio"`` or None."""
    if any(head.startswith(sig) for sig, _ in _IMAGE_SIGNATURES):
        return "image"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio"
    return None


def _describe(head):
    if head[4:12] in (b"ftypM4A ", b"ftypisom", b"ftypmp42"):
        return "an MP4/M4A file"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP image"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "a TIFF image"
    return next((what for sig, what in _OTHER_SIGNATURES if head.startswith(sig)), None)


def file_problem(path, modality):
    """Why ``path`` cannot be a ``modality`` input, or None if its bytes look right.

    Reads at most the first 16 and last 16 bytes. Checks that the file exists, is
    not empty (an empty value means "absent", so an empty file would silently be
    dropped), has a PNG/JPEG/BMP/GIF or RIFF/WAVE signature, and that a PNG or
    JPEG is not cut short.

    Example:
    ```python
    file_problem("clips/a.wav", "audio")  # "is an MP3 file (ID3 tag), not a RIFF/WAVE file"
    ```
    """
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(16)
            f.seek(max(size - 16, 0))
            tail = f.read(16)
    except OSError as err:
        return f"cannot be read ({err.strerror or err})"
    if size == 0:
        return "is empty (0 bytes); leave the cell empty to mark the modality absent"
    kind = sniff(head)
    if modality == "audio" and kind != "audio":
        what = _describe(head) or ("an image" if kind == "image" else "not a recognised format")
        return f"is {what}, not a RIFF/WAVE file (expected bytes starting with RIFF....WAVE)"
    if modality == "image":
        if kind != "image":
            what = _describe(head) or ("a WAV file" if kind == "audio" else "not a recognised format")
            return f"is {what}, not a {IMAGE_FORMATS} image"
        if head.startswith(b"\x89PNG") and b"IEND" not in tail[-12:]:
            return "looks truncated: a PNG must end with an IEND chunk"
        if head.startswith(b"\xff\xd8\xff") and b"\xff\xd9" not in tail:
            return "looks truncated: a JPEG must end with an EOI marker (FF D9)"
    return None
