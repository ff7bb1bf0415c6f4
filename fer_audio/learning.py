"""``fer-audio sounds``: play each earcon followed by its spoken name, to learn the set.

Earcons are abstract: a user learns them by hearing each one with its meaning a few
times. The sequence goes through the same player as live cues (same files, same
level, same speech), either on the audio device in real time or into a WAV file.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fer_audio.config import CUE_KEYS, AudioConfig, Config, CueConfig, SpeechConfig
from fer_audio.resources import SOUNDS_DIR

log = logging.getLogger(__name__)

SYSTEM_NAMES: dict[str, str] = {
    "startup": "started", "paused": "paused", "resumed": "resumed", "warning": "warning",
}
PAUSE_S = 0.8  # silence after each name, before the next earcon
LEAD_IN_S = 0.2


@dataclass(frozen=True)
class LearningItem:
    """One step: an earcon (or None: the name alone), then its name. Shaped like a cue for AudioOut.play."""

    key: str
    earcon: Path | None
    text: str
    mode: str = "both"
    gain_db: float = 0.0
    pan: float = 0.0
    track: int = -1  # no person: withdrawing someone's cues never touches the learning sequence


def learning_sequence(audio_cfg: AudioConfig, speech_cfg: SpeechConfig, cues: Mapping[str, CueConfig],
                      keys: Sequence[str] | None = None, sounds_dir: Path = SOUNDS_DIR) -> list[LearningItem]:
    """Items for ``keys`` (default: every cue, then the system sounds); ValueError names an unknown key.

    Silent cues are included (their sound is what the user hears if they turn it on).
    The spoken name is the cue's text, or the key itself when the cue has none.
    ``audio_cfg`` and ``speech_cfg`` are accepted so a future per-item level or
    voice can come from them; today the player applies them.
    """
    del audio_cfg, speech_cfg
    known = [*CUE_KEYS, *SYSTEM_NAMES]
    chosen = list(keys) if keys else known
    unknown = [k for k in chosen if k not in known]
    if unknown:
        raise ValueError(f"unknown sound {unknown[0]!r}; expected one of {', '.join(known)}")
    items = []
    for key in chosen:
        if key in SYSTEM_NAMES:
            items.append(LearningItem(key, sounds_dir / f"{key}.wav", SYSTEM_NAMES[key]))
            continue
        c = cues.get(key)
        earcon = Path(c.earcon) if c is not None and c.earcon is not None else sounds_dir / f"{key}.wav"
        text = (c.text if c is not None else "").strip() or key.replace("_", " ")
        items.append(LearningItem(key, earcon, text, gain_db=c.gain_db if c is not None else 0.0))
    return items


def play_learning(cfg: Config, keys: list[str] | None, out: Path | None,
                  sleep: Callable[[float], None] = time.sleep) -> int:
    """Play the sequence on the device, or write it to ``out`` (WAV). Returns an exit code.

    0: done; 2: an unknown key or an unwritable file; 1: no audio device (use --out).
    """
    from fer_audio.audio import AudioOut
    from fer_audio.sinks import AudioOutputError

    try:
        items = learning_sequence(cfg.audio, cfg.speech, cfg.cues, keys)
    except ValueError as exc:
        print(f"fer-audio sounds: {exc}", file=sys.stderr)
        return 2
    audio_cfg = cfg.audio.model_copy(update={"output": "wav", "wav_path": out} if out is not None
                                     else {"output": "device"})
    try:
        player = AudioOut(audio_cfg, cfg.speech, {})
    except AudioOutputError as exc:
        print(f"fer-audio sounds: {exc}", file=sys.stderr)
        return 2
    try:
        if out is None and not player.status().device_ok:
            print(f"fer-audio sounds: no audio device ({player.status().problem}); "
                  "write a file instead with --out FILE.wav", file=sys.stderr)
            return 1
        if not player.speech.available:
            print(f"{player.speech.reason}; playing the sounds without their names")
        t = LEAD_IN_S
        for n, item in enumerate(items, 1):
            voices = player.voices_for(item)
            length = player.length_s(voices)
            print(f"{n} of {len(items)}: {item.key}, said as \"{item.text}\"")
            player.play(item, t)
            t += length + PAUSE_S
            if out is None:
                sleep(length + PAUSE_S)
        if out is not None:
            player.close(end_t=t)
            print(f"wrote {out}: {len(items)} sounds, {t:.1f} s")
        return 0
    finally:
        player.close()
