"""fer-audio: hear the facial expressions of the people you talk to.

The service is the ``fer-audio`` command. As a library the API is small:

* :func:`read_faces` (source) yields a :class:`FaceFrame` per analysed frame:
  its time and a :class:`Face` per person (track, :class:`Box`, position,
  expression probabilities, most likely label);
* :class:`FaceReader` does the same for frames you already hold (BGR arrays);
  the service's own frame loop uses it;
* :class:`Config` and :func:`load_config`: the one schema of settings;
* :class:`FerAudioError`: the base of every one-line error;
* ``LABELS``: the expression labels, in the model's order.

``import fer_audio`` loads none of OpenCV, LiteRT or PortAudio: each name
imports its module on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "LABELS",
    "Box",
    "Config",
    "Face",
    "FaceFrame",
    "FaceReader",
    "FerAudioError",
    "__version__",
    "load_config",
    "read_faces",
]

_HOME = {
    "LABELS": "fer_audio.resources",
    "Box": "fer_audio.types",
    "Config": "fer_audio.config",
    "load_config": "fer_audio.config",
    "Face": "fer_audio.reader",
    "FaceFrame": "fer_audio.reader",
    "FaceReader": "fer_audio.reader",
    "read_faces": "fer_audio.reader",
    "FerAudioError": "fer_audio.errors",
}

if TYPE_CHECKING:
    from fer_audio.config import Config, load_config
    from fer_audio.errors import FerAudioError
    from fer_audio.reader import Face, FaceFrame, FaceReader, read_faces
    from fer_audio.resources import LABELS
    from fer_audio.types import Box


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'fer_audio' has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
