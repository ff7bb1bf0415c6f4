"""The one configuration schema: every default, bound and description lives here.

Loaded from TOML. ``extra="forbid"`` everywhere, so a typo is an error that
names its key path instead of a setting silently ignored. Relative paths in a
file are resolved against that file's folder.
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fer_audio.errors import FerAudioError
from fer_audio.resources import DEFAULT_CARD, DEFAULT_YUNET, LABELS, SOUNDS_DIR

MAX_CONFIG_BYTES = 1_000_000


class ConfigError(FerAudioError):
    """A configuration problem, phrased as one line: file, key path, what is wrong."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SourceConfig(_Section):
    uri: str = Field(
        "0",
        description="Camera index ('0'), video file, image folder, or stream URL (rtsp://, http://).",
    )
    realtime: bool = Field(False, description="Pace a file source at its own frame rate.")
    loop: bool = Field(False, description="Start a file source again at its end (demos, soak tests).")
    max_fps: float = Field(15.0, gt=0, le=120, description="Highest rate at which frames are analysed.")
    width: int = Field(0, ge=0, le=7680, description="Camera capture width to ask for (0: camera default).")
    height: int = Field(0, ge=0, le=4320, description="Camera capture height to ask for (0: camera default).")
    retry_initial_s: float = Field(1.0, gt=0, le=60, description="First wait before reopening a lost camera.")
    retry_max_s: float = Field(30.0, gt=0, le=600, description="Longest wait between reopen attempts.")


class DetectorConfig(_Section):
    backend: Literal["yunet", "haar"] = Field("yunet", description="Face detector: YuNet (default) or Haar cascade.")
    model: Path = Field(DEFAULT_YUNET, description="YuNet ONNX file.")
    detect_width: int = Field(320, ge=64, le=1920, description="Frames are downscaled to this width for detection.")
    score_threshold: float = Field(0.7, gt=0, lt=1, description="Minimum detector confidence for a face.")
    nms_threshold: float = Field(0.3, gt=0, lt=1, description="Overlap above which duplicate boxes are merged.")
    min_face_px: int = Field(24, ge=8, le=1000, description="Faces smaller than this (original pixels) are ignored.")
    max_faces: int = Field(8, ge=1, le=64, description="At most this many faces, largest first, are analysed per frame.")
    detect_every: int = Field(
        1, ge=1, le=30,
        description="YuNet looks at the whole frame every n-th frame and only around known faces in between "
                    "(1: whole frame always).",
    )
    threads: int = Field(
        1, ge=0, le=64,
        description="OpenCV threads for the whole process (YuNet, resizing; 0: OpenCV's own choice). At 15 fps "
                    "one thread costs less CPU in all than two and leaves the other cores to the screen reader.",
    )


class TrackerConfig(_Section):
    iou_threshold: float = Field(0.3, gt=0, lt=1, description="Minimum box overlap to continue a track.")
    max_missed: int = Field(5, ge=0, le=100, description="Frames a track survives without a detection.")


class ModelConfig(_Section):
    card: Path = Field(DEFAULT_CARD, description="Model card (card.json); the model files sit beside it.")
    backend: Literal["litert", "keras"] = Field(
        "litert", description="litert runs the .tflite (small, fast start); keras needs TensorFlow."
    )
    threads: int = Field(
        1, ge=1, le=64,
        description="CPU threads for the expression model. One is cheaper in all at 15 fps; more only "
                    "shortens each frame with many faces.",
    )
    verify_sha256: bool = Field(True, description="Refuse a model file whose sha256 differs from the card.")
    flip_average: bool = Field(
        True,
        description="Also look at each face's mirror image where the model card says that is more accurate; "
                    "false halves the model's CPU for a point or so of accuracy.",
    )
    ensemble: bool = Field(
        True,
        description="Run every network the model card names and average them; false runs the first network "
                    "alone, for the CPU the others cost.",
    )


class SmoothingConfig(_Section):
    half_life_s: float = Field(0.25, gt=0, le=10, description="Half-life of the exponential smoothing of probabilities.")
    enter_threshold: float = Field(
        0.55, gt=0, lt=1,
        description="Smoothed probability needed to enter an expression that has no threshold of its own.",
    )
    exit_threshold: float = Field(
        0.40, gt=0, lt=1,
        description="Below this the current expression is left (hysteresis); scaled down with a lower enter threshold.",
    )
    card_thresholds: bool = Field(
        True, description="Use the model card's per-expression enter thresholds (chosen for a stated precision).",
    )
    enter_thresholds: dict[str, float] = Field(
        default_factory=dict,
        description="Per-expression enter thresholds, e.g. { sad = 0.5 }; these win over the model card's.",
    )
    min_dwell_s: float = Field(0.1, ge=0, le=10, description="A candidate expression must hold this long before it counts.")
    cooldown_s: float = Field(
        5.0, ge=0, le=600, description="The same expression of the same person is not cued again within this."
    )
    appear_after_s: float = Field(0.3, ge=0, le=10, description="A face must be seen this long before it is announced.")
    lost_after_s: float = Field(1.0, gt=0, le=60, description="A face unseen this long is reported lost.")

    @field_validator("enter_thresholds")
    @classmethod
    def _known_labels(cls, value: dict[str, float]) -> dict[str, float]:
        for label, v in value.items():
            if label not in LABELS:
                raise ValueError(f"unknown expression {label!r}; expected one of {', '.join(LABELS)}")
            if not 0 < v < 1:
                raise ValueError(f"{label}: {v!r} is not a probability between 0 and 1")
        return value

    @model_validator(mode="after")
    def _hysteresis(self) -> SmoothingConfig:
        if self.exit_threshold > self.enter_threshold:
            raise ValueError("exit_threshold must not exceed enter_threshold")
        return self


class AttentionConfig(_Section):
    """Who is facing you: the yaw ratio of fer_audio.headpose, with hysteresis and dwell."""

    facing_ratio: float = Field(
        0.27, gt=0, le=2, description="A face whose nose sits within this many eye distances of the eyes' middle faces you."
    )
    away_ratio: float = Field(
        0.35, gt=0, le=2, description="A facing person has turned away once past this (hysteresis; >= facing_ratio)."
    )
    facing_dwell_s: float = Field(0.5, ge=0, le=10, description="Facing must hold this long before 'facing' is cued.")
    away_dwell_s: float = Field(1.0, ge=0, le=10, description="Turned away this long before 'looked_away' is cued.")
    cooldown_s: float = Field(
        5.0, ge=0, le=600, description="The same attention event of the same person is not cued again within this."
    )

    @model_validator(mode="after")
    def _hysteresis(self) -> AttentionConfig:
        if self.away_ratio < self.facing_ratio:
            raise ValueError("away_ratio must not be below facing_ratio")
        return self


class GestureConfig(_Section):
    """Nods and head shakes (fer_audio.gestures), measured relative to the face's own size."""

    enabled: bool = Field(True, description="Detect nods and head shakes.")
    window_s: float = Field(2.0, gt=0, le=10, description="The movement must complete within this many seconds.")
    shake_swing: float = Field(
        0.2, gt=0, le=2, description="Least yaw-ratio change (eye distances) that counts as one turn of a shake."
    )
    shake_swings: int = Field(4, ge=2, le=20, description="Turns (left/right legs) that make a shake.")
    nod_swing: float = Field(0.08, gt=0, le=2, description="Least vertical nose move (face widths) that is one leg of a nod.")
    nod_swings: int = Field(3, ge=2, le=20, description="Legs (down/up) that make a nod.")
    nod_pitch_correlation: float = Field(
        0.7, ge=-1, le=1, description="A nod's up-down motion must correlate this well with the head's pitch (not the camera's)."
    )
    max_travel: float = Field(0.5, gt=0, le=10, description="A face moving more than this many widths sideways is not nodding.")
    max_growth: float = Field(1.3, gt=1, le=10, description="A face whose size changes more than this factor is not nodding.")
    cooldown_s: float = Field(2.0, ge=0, le=600, description="The same gesture of the same person is not cued again within this.")


CueMode = Literal["earcon", "speech", "both", "silent"]


def unplayable(mode: str, earcon: Path | None, text: str) -> str | None:
    """Why a cue could never play (earcon mode without a file, speech without text), or None.

    The one statement of the rule: the schema, the planner and each Cue ask it.
    """
    if mode in ("earcon", "both") and earcon is None:
        return f"mode {mode!r} needs an earcon file"
    if mode in ("speech", "both") and not text.strip():
        return f"mode {mode!r} needs text to speak"
    return None


class CueConfig(_Section):
    mode: CueMode = Field("earcon", description="earcon, speech, both (earcon then word) or silent.")
    earcon: Path | None = Field(None, description="Sound file (WAV/FLAC/OGG, at most 2 s).")
    text: str = Field("", max_length=60, description="Word(s) spoken for this cue.")
    gain_db: float = Field(0.0, ge=-40, le=12, description="Gain of this cue relative to the master volume.")

    @field_validator("earcon", mode="before")
    @classmethod
    def _empty_is_none(cls, v: Any) -> Any:
        return None if v == "" else v

    @model_validator(mode="after")
    def _playable(self) -> CueConfig:
        problem = unplayable(self.mode, self.earcon, self.text)
        if problem is not None:
            raise ValueError(problem)
        return self


def _default_cues() -> dict[str, CueConfig]:
    words = {
        "angry": "angry", "disgust": "disgusted", "fear": "afraid", "happy": "smiling",
        "sad": "sad", "surprise": "surprised", "neutral": "neutral",
        "face_appeared": "face", "face_lost": "face gone",
        "facing": "facing you", "looked_away": "looked away", "nod": "nods", "shake": "shakes head",
    }
    quiet = {"neutral", "face_appeared", "face_lost", "looked_away"}
    return {
        k: CueConfig(mode="silent" if k in quiet else "earcon", earcon=SOUNDS_DIR / f"{k}.wav", text=v)
        for k, v in words.items()
    }


CUE_KEYS: tuple[str, ...] = (*LABELS, "face_appeared", "face_lost", "facing", "looked_away", "nod", "shake")


SpeechEngine = Literal["auto", "speech-dispatcher", "espeak-ng"]


class SpeechConfig(_Section):
    enabled: bool = Field(True, description="Speak cues and spoken messages at all.")
    engine: SpeechEngine = Field(
        "auto",
        description="auto: through speech-dispatcher (the screen reader's speech server, your own voice) "
        "when it answers, else the built-in espeak-ng voice; speech-dispatcher: the same, with a warning "
        "while it is absent; espeak-ng: always the built-in voice. A WAV recording always uses espeak-ng.",
    )
    voice: str = Field("", description="Built-in (espeak-ng) voice id or name; empty for the system default.")
    rate_wpm: int = Field(190, ge=80, le=450, description="Built-in (espeak-ng) speaking rate in words per minute.")
    volume: float = Field(1.0, ge=0, le=1, description="Built-in (espeak-ng) speech volume before the cue gain.")
    dispatcher_module: str = Field(
        "", description="speech-dispatcher output module for fer-audio's words (e.g. espeak-ng); empty: yours."
    )
    dispatcher_voice: str = Field(
        "", description="speech-dispatcher synthesis voice for fer-audio's words; empty: your own voice."
    )
    dispatcher_rate: int | None = Field(
        None, ge=-100, le=100, description="speech-dispatcher rate (-100..100) for fer-audio's words; empty: yours."
    )
    max_wait_s: float = Field(
        8.0, ge=0.5, le=120,
        description="A spoken cue that has waited this long behind other speech (the screen reader) is dropped.",
    )

    @field_validator("dispatcher_rate", mode="before")
    @classmethod
    def _empty_is_none(cls, v: Any) -> Any:
        return None if v == "" else v


class AudioConfig(_Section):
    output: Literal["device", "wav", "silent"] = Field("device", description="Where cues go.")
    device: str = Field("", description="Output device name (substring) or index; empty for the default.")
    wav_path: Path | None = Field(None, description="File written when output is 'wav'.")
    sample_rate: int = Field(48000, ge=8000, le=192000, description="Output sample rate.")
    master_db: float = Field(-12.0, ge=-60, le=0, description="Master volume in dB (quiet: the user is in a conversation).")
    max_delay_s: float = Field(
        0.5, gt=0, le=10,
        description="A cue that cannot be re-checked (no scene: tools, replays) is dropped when later than this.",
    )
    min_interval_s: float = Field(1.5, ge=0, le=60, description="Least time between two cues, across all people.")
    max_pending_s: float = Field(
        6.0, gt=0, le=60,
        description="A cue that meets the rate limit waits, while still true, at most this long for its slot.",
    )
    verbosity: Literal["all", "changes-only", "main-face-only"] = Field(
        "changes-only",
        description="all: every event; changes-only: expression, facing and nod/shake changes, no face appeared/lost; "
                    "main-face-only: those, only for the largest face.",
    )
    say_facing: bool = Field(
        False, description="Spoken expression cues add 'at you' when the person is facing you ('smiling at you')."
    )
    pan_width: float = Field(0.8, ge=0, le=1, description="How far left/right a face at the frame edge is panned.")
    startup_sound: bool = Field(True, description="Play a short sound when the service is ready.")
    media_role: Literal["a11y", "event", "notification", "music", "phone", "production", "test"] = Field(
        "a11y", description="media.role of the output stream, for PulseAudio/PipeWire policies that route, duck or mute."
    )

    @field_validator("wav_path", mode="before")
    @classmethod
    def _empty_is_none(cls, v: Any) -> Any:
        return None if v == "" else v


class Config(_Section):
    source: SourceConfig = Field(default_factory=SourceConfig)
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    smoothing: SmoothingConfig = Field(default_factory=SmoothingConfig)
    attention: AttentionConfig = Field(default_factory=AttentionConfig)
    gestures: GestureConfig = Field(default_factory=GestureConfig)
    cues: dict[str, CueConfig] = Field(default_factory=_default_cues, description="Per expression/event cue.")
    speech: SpeechConfig = Field(default_factory=SpeechConfig)
    audio: AudioConfig = Field(default_factory=AudioConfig)

    @field_validator("cues", mode="before")
    @classmethod
    def _merge_cues(cls, value: Any) -> Any:
        """A file names only the cues it changes; the rest keep their defaults."""
        if not isinstance(value, dict):
            return value
        unknown = sorted(set(value) - set(CUE_KEYS))
        if unknown:
            raise ValueError(f"unknown cue {unknown[0]!r}; expected one of {', '.join(CUE_KEYS)}")
        merged: dict[str, Any] = {k: v.model_dump() for k, v in _default_cues().items()}
        for k, v in value.items():
            if isinstance(v, dict):
                merged[k] = {**merged[k], **v}
            else:
                merged[k] = v
        return merged


def config_home() -> Path:
    """$XDG_CONFIG_HOME, else ~/.config: where the config and the systemd user unit go."""
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")


def default_config_path() -> Path:
    return config_home() / "fer-audio" / "config.toml"


def _resolve_paths(raw: dict[str, Any], base: Path, origin: Path | str = "<string>") -> None:
    """Relative paths: the file's own folder first, then the bundled data folder.

    The second lets a user write ``sounds/happy.wav`` for a bundled sound, as
    the example config shows, from wherever their config lives.
    """
    from fer_audio.resources import DATA_ROOT

    def fix(section: dict[str, Any], key: str, where: str) -> None:
        v = section.get(key)
        if not isinstance(v, str) or not v:
            return
        try:
            p = Path(v).expanduser()
            if p.is_absolute():
                section[key] = str(p)
                return
            mine, bundled = base / v, DATA_ROOT / v
            section[key] = str(bundled if not mine.exists() and bundled.exists() else mine)
        except (RuntimeError, OSError, ValueError) as exc:
            # ~nosuchuser, names longer than the file system allows, NUL bytes.
            raise ConfigError(f"{origin}: {where}: unusable path: {_printable(str(exc))}") from None

    for sect, key in (("detector", "model"), ("model", "card"), ("audio", "wav_path")):
        if isinstance(raw.get(sect), dict):
            fix(raw[sect], key, f"{sect}.{key}")
    cues = raw.get("cues")
    if isinstance(cues, dict):
        for name, c in cues.items():
            if isinstance(c, dict):
                fix(c, "earcon", f"cues.{_printable(str(name))}.earcon")


def _printable(text: str) -> str:
    """One line, whatever a hostile file put in a key or message."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def _format_error(path: Path | str, err: ValidationError) -> str:
    first = err.errors()[0]
    loc = _printable(".".join(str(p) for p in first["loc"])) or "(top level)"
    msg = _printable(first["msg"])
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{path}: {loc}: {msg}{more}"


def parse_config(text: str, path: Path | str = "<string>", base: Path | None = None) -> Config:
    """Parse TOML text; raise ConfigError with one line on any problem."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {_printable(str(exc))}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid TOML: nested too deeply") from None
    _resolve_paths(raw, base or Path.cwd(), path)
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_error(path, exc)) from None


def load_config(path: str | Path | None = None) -> Config:
    """Load ``path``; with None, the user's config file if it exists, else the defaults."""
    if path is None:
        p = default_config_path()
        if not p.exists():
            return Config()
    else:
        p = Path(path).expanduser()
    try:
        st = p.stat()
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError
        if not stat.S_ISREG(st.st_mode):
            # A FIFO would block for ever, /dev/zero never ends.
            raise ConfigError(f"{p}: not a regular file")
        if st.st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{p}: file is {st.st_size} bytes; a config is at most {MAX_CONFIG_BYTES}")
        with open(p, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{p}: file is over {MAX_CONFIG_BYTES} bytes; that is too big for a config")
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{p}: is a directory, not a TOML file") from None
    except PermissionError:
        raise ConfigError(f"{p}: permission denied") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text (byte {exc.start})") from None
    return parse_config(text, p, p.parent.resolve())



def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, Path):
        return '"' + _display_path(v) + '"'
    if v is None:
        return '""'
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }" if v else "{}"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _display_path(p: Path) -> str:
    """Bundled files are shown relative to the data root, which is how a user would name them."""
    from fer_audio.resources import DATA_ROOT

    try:
        return str(Path(p).relative_to(DATA_ROOT))
    except ValueError:
        return str(p)


def example_toml() -> str:
    """A commented config with every key at its default, generated from this schema.

    The shipped config.example.toml is this text (a test keeps them equal), so
    the example can never drift from the real defaults.
    """
    lines = [
        "# fer-audio configuration. Every key is optional; these are the defaults.",
        "# Copy to ~/.config/fer-audio/config.toml and change what you need.",
        "# Relative paths are looked up in this file's folder first, then in the",
        "# fer-audio data folder (where the bundled models/ and sounds/ are).",
        "",
    ]
    cfg = Config()
    for name in Config.model_fields:
        section = getattr(cfg, name)
        if name == "cues":
            lines.append("# Per-expression cues: mode = earcon | speech | both | silent.")
            lines.append("# A section names only what it changes, e.g. [cues.happy] mode = \"speech\".")
            for key, cue in section.items():
                lines.append(f"[cues.{key}]")
                for fname, finfo in CueConfig.model_fields.items():
                    lines.append(f"# {finfo.description}")
                    lines.append(f"# {fname} = {_toml_value(getattr(cue, fname))}")
                lines.append("")
            continue
        lines.append(f"[{name}]")
        for fname, finfo in type(section).model_fields.items():
            lines.append(f"# {finfo.description}")
            lines.append(f"# {fname} = {_toml_value(getattr(section, fname))}")
        lines.append("")
    return "\n".join(lines)
