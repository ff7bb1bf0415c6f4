"""User sound files: what load_sound accepts, and the one line it gives for what it refuses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from fer_audio.resources import SOUNDS_DIR
from fer_audio.sound import SoundFileError, load_sound

RATE = 48000


def chirp(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.4 * np.sin(2 * np.pi * (300 + 900 * t) * t) * np.hanning(len(t))).astype(np.float32)


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    p = tmp_path / "nope.wav"
    with pytest.raises(SoundFileError, match=r"nope\.wav: no such file$"):
        load_sound(p, RATE)


def test_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SoundFileError, match="is a folder"):
        load_sound(tmp_path, RATE)


def test_text_file_is_not_audio(tmp_path: Path) -> None:
    p = tmp_path / "notes.wav"
    p.write_text("this is not a sound\n")
    with pytest.raises(SoundFileError) as err:
        load_sound(p, RATE)
    msg = str(err.value)
    assert msg.startswith(f"{p}: not a readable sound file") and "\n" not in msg


def test_too_long_is_refused_with_its_length(tmp_path: Path) -> None:
    p = tmp_path / "long.wav"
    soundfile.write(p, chirp(2.5, 22050), 22050)
    with pytest.raises(SoundFileError, match=r"long\.wav: 2\.50 s long; a cue sound is at most 2 s"):
        load_sound(p, RATE)


def test_empty_file_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "empty.wav"
    soundfile.write(p, np.zeros(0, np.float32), RATE)
    with pytest.raises(SoundFileError, match="contains no audio"):
        load_sound(p, RATE)


@pytest.mark.parametrize(("fmt", "subtype", "suffix"), [("FLAC", "PCM_16", ".flac"), ("OGG", "VORBIS", ".ogg"),
                                                         ("WAV", "FLOAT", ".wav")])
def test_flac_ogg_and_float_wav_load_at_the_output_rate(tmp_path: Path, fmt: str, subtype: str,
                                                       suffix: str) -> None:
    src_rate = 44100
    x = chirp(0.5, src_rate)
    p = tmp_path / f"cue{suffix}"
    soundfile.write(p, x, src_rate, format=fmt, subtype=subtype)
    s = load_sound(p, RATE)
    assert s.rate == RATE
    assert s.duration_s == pytest.approx(0.5, abs=0.002)
    assert s.data.dtype == np.float32
    # Same signal: energy kept through decoding and resampling (Vorbis is lossy: loose bound).
    ratio = float(np.sum(s.data.astype(np.float64) ** 2) / RATE) / float(np.sum(x.astype(np.float64) ** 2) / src_rate)
    assert ratio == pytest.approx(1.0, abs=0.05)


def test_stereo_file_is_mixed_to_mono(tmp_path: Path) -> None:
    x = chirp(0.2, RATE)
    p = tmp_path / "stereo.wav"
    soundfile.write(p, np.stack([x, np.zeros_like(x)], axis=1), RATE, subtype="FLOAT")
    s = load_sound(p, RATE)
    np.testing.assert_allclose(s.data, x / 2, atol=1e-6)


def test_bundled_earcons_all_load() -> None:
    for wav in sorted(SOUNDS_DIR.glob("*.wav")):
        assert load_sound(wav, RATE).frames > 0
