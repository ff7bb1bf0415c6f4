"""The player the pipeline calls: the top of the audio layers.

Bottom up: sound values (fer_audio.sound), the mixer (fer_audio.mixer), the
output sinks (fer_audio.sinks), and :class:`AudioOut` here. It loads every
earcon and renders every spoken phrase once at start-up, so a cue starts
within one audio block, and it never raises into the frame loop: a device
that fails to open or goes away is reported once, cues go to a
:class:`~fer_audio.sinks.SilentSink` meanwhile, and the device is reopened
with backoff (:class:`~fer_audio.sinks.Reconnector`); it is reported once
more when it is back.

Nothing here opens a device or imports sounddevice at import time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from fer_audio.config import AudioConfig, Config, CueConfig, SpeechConfig
from fer_audio.dispatcher import WARNING_PRIORITY
from fer_audio.mixer import Voice
from fer_audio.resources import SOUNDS_DIR
from fer_audio.sinks import AudioDeviceError, AudioOutputError, DeviceSink, Reconnector, SilentSink, Sink, WavSink
from fer_audio.sound import Sound, SoundFileError, load_sound
from fer_audio.types import AudioStatus

if TYPE_CHECKING:
    from fer_audio.dispatcher import DispatcherSpeaker
    from fer_audio.speech import SpeechCache, TtsEngine

log = logging.getLogger(__name__)

WORD_GAP_S = 0.06  # between an earcon and the word that follows it ("both")
SYSTEM_SOUNDS: tuple[str, ...] = ("startup", "paused", "resumed", "warning")


def check_cues(cfg: Config) -> None:
    """Refuse a mapping that could not play, before it replaces a working one (reload, check-config).

    Raises CueError with one line naming the cue and the file.
    """
    from fer_audio.cues import CueError, CuePlanner

    CuePlanner(cfg.cues, cfg.audio)
    for key, cue in cfg.cues.items():
        if cue.mode in ("earcon", "both") and cue.earcon is not None:
            try:
                load_sound(Path(cue.earcon), cfg.audio.sample_rate)
            except Exception as exc:
                raise CueError(f"cues.{key}.earcon: {exc}") from None


class CueLike(Protocol):
    """What :meth:`AudioOut.play` reads from a cue (fer_audio.cues.Cue has exactly these)."""

    @property
    def key(self) -> str: ...
    @property
    def mode(self) -> str: ...
    @property
    def earcon(self) -> Path | None: ...
    @property
    def text(self) -> str: ...
    @property
    def gain_db(self) -> float: ...
    @property
    def pan(self) -> float: ...
    @property
    def track(self) -> int: ...  # whose cue: a withdrawn person's queued speech is dropped by it


class AudioOut:
    """The player the pipeline calls: play(cue, t), play_system(name, t), say(text, t), close().

    ``t`` is the pipeline's source-clock time in seconds: a WAV output places the cue
    there; a device plays it now. No public method raises; problems are logged once
    and, where the user could miss the log, signalled with the warning earcon.
    """

    def __init__(
        self,
        audio: AudioConfig,
        speech: SpeechConfig,
        cues: Mapping[str, CueConfig],
        *,
        sink: Sink | None = None,
        tts: TtsEngine | None = None,
        sounds_dir: Path = SOUNDS_DIR,
        clock: Callable[[], float] = time.monotonic,
        retry_initial_s: float = 1.0,
        retry_max_s: float = 30.0,
        dispatcher: DispatcherSpeaker | None = None,
    ) -> None:
        from fer_audio.speech import open_speech

        self.rate = audio.sample_rate
        self._clock = clock
        self._lock = threading.RLock()
        self._warned: set[str] = set()
        self._silent = SilentSink(self.rate)
        self._played = 0
        self._pending_warning = False
        self._closed = False

        self._sink: Sink = sink if sink is not None else self._make_sink(audio)
        self._link = Reconnector(self._sink, clock=clock, retry_initial_s=retry_initial_s, retry_max_s=retry_max_s)
        if isinstance(self._sink, DeviceSink) and sink is None:
            self._open_device(self._sink)
        self._earcons: dict[Path, Sound | None] = {}
        for key, c in cues.items():
            if c.mode != "silent" and c.earcon is not None:
                self._load_earcon(Path(c.earcon), f"cues.{key}.earcon")
        self._system: dict[str, Sound | None] = {
            name: self._load_earcon(sounds_dir / f"{name}.wav", f"system sound {name!r}")
            for name in SYSTEM_SOUNDS
        }
        self._defaults_dir = sounds_dir

        speaking = sorted({c.text for c in cues.values() if c.mode in ("speech", "both") and c.text.strip()})
        # Opened even when no cue speaks: say() voices problems (camera lost, ...).
        self.speech: SpeechCache = open_speech(speech, self.rate, engine=tts)
        # speech-dispatcher (fer_audio/dispatcher.py): only for a live device, never for a recording.
        self.dispatcher: DispatcherSpeaker | None = dispatcher
        if dispatcher is None and sink is None and audio.output == "device":
            self.dispatcher = self._open_dispatcher(speech)
        if self.speech.available:
            self.speech.prerender(speaking)  # also the fallback when speech-dispatcher is away
        elif speaking and not (self.dispatcher is not None and self.dispatcher.up):
            self._speech_missing()

    def _open_dispatcher(self, speech: SpeechConfig) -> DispatcherSpeaker | None:
        """The user's speech-dispatcher per ``speech.engine``; absent at start is one line, not an error."""
        from fer_audio.dispatcher import DispatcherSpeaker

        if not speech.enabled or speech.engine == "espeak-ng":
            return None
        speaker = DispatcherSpeaker(speech, on_lost=self._dispatcher_lost, on_back=self._dispatcher_back)
        if speaker.start():
            log.info("speech: through speech-dispatcher (%s) as client %s", speaker.path, speaker.name)
        elif speech.engine == "speech-dispatcher":
            self._warn_once("speechd", f"speech.engine 'speech-dispatcher': {speaker.problem}; spoken cues use "
                            "the built-in espeak-ng voice until it answers")
            self._pending_warning = True
        else:
            log.info("speech: %s; spoken cues use the built-in espeak-ng voice (speech-dispatcher is used "
                     "once it answers)", speaker.problem)
        return speaker

    def _dispatcher_lost(self, reason: str) -> None:
        """speech-dispatcher died under us: one line, one audible warning, the built-in voice meanwhile."""
        if self._closed:
            return
        log.warning("speech-dispatcher stopped (%s); spoken cues use the built-in espeak-ng voice until it is back",
                    reason)
        self.play_system("warning", 0.0)
        self.say("speech dispatcher lost", 0.0)

    def _dispatcher_back(self) -> None:
        log.info("speech-dispatcher answers again; spoken cues go through it")

    # -- construction helpers

    def _make_sink(self, audio: AudioConfig) -> Sink:
        if audio.output == "silent":
            return self._silent
        if audio.output == "wav":
            if audio.wav_path is None:
                raise AudioOutputError("audio.wav_path: required when audio.output is 'wav'")
            return WavSink(audio.wav_path, self.rate, audio.master_db)
        return DeviceSink(self.rate, audio.master_db, audio.device, clock=self._clock, media_role=audio.media_role)

    def _open_device(self, dev: DeviceSink) -> None:
        try:
            dev.open()
        except AudioDeviceError as exc:
            self._link.mark_down(str(exc), "audio device unavailable")
        except Exception as exc:  # PortAudio can fail in ways of its own
            self._link.mark_down(f"{type(exc).__name__}: {exc}", "audio device unavailable")

    def _load_earcon(self, path: Path, where: str) -> Sound | None:
        if path in self._earcons:
            return self._earcons[path]
        try:
            sound: Sound | None = load_sound(path, self.rate)
        except SoundFileError as exc:
            self._warn_once(f"earcon:{path}", f"{where}: {exc}")
            sound = None
        self._earcons[path] = sound
        return sound

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s", message)

    def _speech_missing(self) -> None:
        if "speech" not in self._warned:
            self._warn_once("speech", f"{self.speech.reason}; spoken cues fall back to their earcons")
            self._pending_warning = True

    # -- what a cue sounds like

    def _earcon_for(self, key: str, path: Path | None) -> Sound | None:
        if path is not None:
            return self._load_earcon(Path(path), f"cue {key!r}")
        default = self._defaults_dir / f"{key}.wav"
        return self._load_earcon(default, f"cue {key!r}") if default.is_file() else None

    def _word(self, text: str) -> Sound | None:
        """The rendered phrase; None (and the once-only notice) when speech is unavailable."""
        if not text.strip():
            return None
        if not self.speech.available:
            self._speech_missing()
            return None
        return self.speech.get(text)

    def voices_for(self, cue: CueLike) -> list[Voice]:
        """The voices a cue turns into, with fallbacks: no earcon -> its word; no speech -> its earcon."""
        mode = cue.mode
        gain, pan = float(cue.gain_db), float(cue.pan)
        earcon = self._earcon_for(cue.key, cue.earcon) if mode in ("earcon", "both") else None
        word = self._word(cue.text or cue.key.replace("_", " ")) if mode in ("speech", "both") else None
        if mode == "earcon" and earcon is None:
            word = self._word(cue.text or cue.key.replace("_", " "))
        if mode == "speech" and word is None:
            earcon = self._earcon_for(cue.key, cue.earcon)
        out: list[Voice] = []
        if earcon is not None:
            out.append(Voice(earcon, gain, pan, 0))
        if word is not None:
            offset = out[0].end + int(WORD_GAP_S * self.rate) if out else 0
            out.append(Voice(word, gain, pan, offset))
        return out

    def length_s(self, voices: Sequence[Voice]) -> float:
        return max((v.end for v in voices), default=0) / self.rate

    # -- public API

    def play(self, cue: CueLike, t: float) -> bool:
        """Play a planned cue; True when it went to an audible output."""
        with self._lock:
            try:
                if cue.mode == "silent":
                    return False
                if self._dispatched(cue, t):
                    return True
                return self._submit(self.voices_for(cue), t)
            except Exception:
                self._log_unexpected("play")
                return False

    def _dispatched(self, cue: CueLike, t: float) -> bool:
        """A cue's words through speech-dispatcher (its earcon, if any, here first); False: not taken."""
        d = self.dispatcher
        text = cue.text or cue.key.replace("_", " ")
        if d is None or not d.up or cue.mode not in ("speech", "both") or not text.strip():
            return False
        earcon = self._earcon_for(cue.key, cue.earcon) if cue.mode == "both" else None
        voices = [Voice(earcon, float(cue.gain_db), float(cue.pan), 0)] if earcon is not None else []
        delay = self.length_s(voices) + WORD_GAP_S if voices else 0.0
        if not d.speak(text, tag=(cue.track, cue.key), delay_s=delay):
            return False
        self._submit(voices, t)
        self._played += 0 if voices else 1
        return True

    def withdraw(self, track: int | None, key: str | None = None) -> int:
        """Hook for the presenter: cues of ``track`` (None: all) of ``key`` (None: any) stopped being true.

        Only speech-dispatcher words can still be waiting (for the screen reader); earcons play at
        once. Drops the unspoken ones.
        """
        d = self.dispatcher
        try:
            return d.withdraw(track, key) if d is not None else 0
        except Exception:
            self._log_unexpected("withdraw")
            return 0

    def play_system(self, name: str, t: float) -> bool:
        """startup, paused, resumed or warning."""
        with self._lock:
            try:
                if name not in SYSTEM_SOUNDS:
                    self._warn_once(f"system:{name}", f"unknown system sound {name!r}; expected one of "
                                    f"{', '.join(SYSTEM_SOUNDS)}")
                    return False
                sound = self._system.get(name)
                if sound is None:
                    return False
                if name == "warning":
                    self._pending_warning = False
                # System sounds wait for what is playing (a warning must not land on the
                # start-up chord); expression cues never wait, they would be stale.
                return self._submit([Voice(sound)], t, queue=True)
            except Exception:
                self._log_unexpected("play_system")
                return False

    def say(self, text: str, t: float) -> bool:
        """Speak ``text`` after whatever is playing (rendered on first use, then cached)."""
        with self._lock:
            try:
                d = self.dispatcher
                # A fault warning goes at 'message' priority: always delivered, never cutting the screen reader.
                if d is not None and text.strip() and d.speak(text, priority=WARNING_PRIORITY):
                    self._played += 1
                    return True
                if not self.speech.available:
                    # The caller sounds its own warning earcon with a message; one log line here.
                    self._warn_once("speech-say", f"{self.speech.reason}; spoken messages are not heard")
                    return False
                word = self.speech.get(text) if text.strip() else None
                if word is None:
                    return False
                return self._submit([Voice(word)], t, queue=True)
            except Exception:
                self._log_unexpected("say")
                return False

    def prerender(self, texts: Sequence[str]) -> None:
        """Render spoken cues now (a reload's new words) rather than at their first cue; no-op without speech."""
        if self.speech.available:
            self.speech.prerender(texts)

    def status(self) -> AudioStatus:
        with self._lock:
            silenced = self._silent.groups if self._sink is not self._silent else 0
            d = self.dispatcher
            engine = "speech-dispatcher" if d is not None and d.up else \
                ("espeak-ng" if self.speech.available else "off")
            return AudioStatus(self._sink.name, not self._link.down, self.speech.available, self._played,
                               silenced, self._sink.underflows, self._link.problem, engine)

    def close(self, end_t: float | None = None) -> None:
        """Stop output; a WAV output is written out to the end of the last cue (or ``end_t``)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._sink.close(end_t)
            except Exception as exc:
                log.warning("closing the %s output: %s", self._sink.name, exc)
            try:
                self.speech.close()
            except Exception as exc:
                log.debug("closing speech: %s", exc)
            if self.dispatcher is not None:
                self.dispatcher.close()

    # -- internals

    def _submit(self, voices: list[Voice], t: float, queue: bool = False) -> bool:
        if self._closed:
            return False
        if self._pending_warning:
            warning = self._system.get("warning")
            if warning is not None:
                end = max((v.end for v in voices), default=0)
                gap = int(WORD_GAP_S * self.rate) if voices else 0
                voices = [*voices, Voice(warning, 0.0, 0.0, end + gap)]
            self._pending_warning = False
        if not voices:
            return False
        self._link.check()
        if self._link.down:
            self._silent.play(voices, t, queue)
            return False
        try:
            self._sink.play(voices, t, queue)
        except Exception as exc:
            self._link.failed(f"{type(exc).__name__}: {exc}")
            self._silent.play(voices, t, queue)
            return False
        self._played += 1
        return True

    def _log_unexpected(self, where: str) -> None:
        if f"bug:{where}" in self._warned:
            log.debug("audio %s failed again", where, exc_info=True)
            return
        self._warned.add(f"bug:{where}")
        log.exception("audio %s failed; the frame loop goes on", where)
