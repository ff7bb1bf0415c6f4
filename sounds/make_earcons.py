"""Generate the bundled earcons from numpy alone, measure them, and document them.

Run from the repository root:  .venv/bin/python sounds/make_earcons.py [--out DIR]

Design (after Brewster, Wright and Edwards' earcon guidelines): sounds that must be
told apart differ in timbre, rhythm and register, not in pitch alone, because pitch
alone is the weakest cue for untrained listeners. Expressions form two families:
pleasant ones use rising major figures on bright, decaying (struck) timbres; unpleasant
ones use falling minor figures on sustained, darker or rougher timbres; neutral is a
soft tick. Face and system sounds use timbres of their own (pure glides, an organ
chord, a hollow two-note figure, an alternating alarm) so they never read as an
expression.

Loudness: BS.1770 gating works on 400 ms blocks, longer than most earcons, so each
earcon is measured *looped* (tiled end to end to at least 3 s) with pyloudnorm's
BS.1770-4 meter. A loop is stationary, so the gates drop nothing and the result is the
K-weighted mean power over the earcon's own length, in LUFS. Every earcon is scaled
to the same target.

Distinctness: log-mel spectrograms (48 bands, 60 Hz to 12 kHz, 21 ms windows, 5 ms
hop, dB with an 80 dB floor); the distance between two sounds is the RMS difference
in dB over time and bands, minimised over +-20 ms alignment shifts. The reference
is how far a sound moves when it is only transposed up a whole tone (the median over
the set): every pair must differ by more than that, i.e. by more than a pitch change.

pyloudnorm is a dev dependency; the runtime never imports this script.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RATE = 48000
TARGET_LUFS = -20.0
MAX_PEAK = 0.5  # -6 dBFS: headroom for a hard pan (gain 1 on one side) and overlapping cues
EDGE_FADE_S = 0.004
LOOP_MIN_S = 3.0

Partials = Sequence[tuple[float, float, float]]  # (frequency ratio, amplitude, decay per second)


# --------------------------------------------------------------------------- synthesis

def _raised_cosine(n: int) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(np.pi * np.arange(n) / max(n, 1))


def voice(
    f0: float | np.ndarray,
    dur_s: float,
    partials: Partials,
    attack_s: float = 0.004,
    release_s: float = 0.02,
    vibrato: tuple[float, float] = (0.0, 0.0),
    tremolo: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """One note: additive partials on a phase accumulator, so glides stay click-free."""
    n = int(round(dur_s * RATE))
    t = np.arange(n) / RATE
    f = np.broadcast_to(np.asarray(f0, dtype=np.float64), (n,)).copy()
    vib_rate, vib_depth = vibrato
    if vib_depth:
        f *= 1.0 + vib_depth * np.sin(2 * np.pi * vib_rate * t)
    phase = 2 * np.pi * np.cumsum(f) / RATE
    out = np.zeros(n)
    for ratio, amp, decay in partials:
        if ratio * float(f.max()) >= 0.45 * RATE:
            continue  # band-limit: no aliasing partials
        out += amp * np.exp(-decay * t) * np.sin(ratio * phase)
    trem_rate, trem_depth = tremolo
    if trem_depth:
        out *= 1.0 - trem_depth * (0.5 + 0.5 * np.sin(2 * np.pi * trem_rate * t))
    env = np.ones(n)
    a, r = int(attack_s * RATE), int(release_s * RATE)
    env[:a] = _raised_cosine(a)
    env[n - r:] *= _raised_cosine(r)[::-1]
    return out * env


def glide(f_start: float, f_end: float, dur_s: float) -> np.ndarray:
    """Exponential pitch curve: equal musical steps per unit time."""
    n = int(round(dur_s * RATE))
    return np.asarray(f_start * (f_end / f_start) ** (np.arange(n) / max(n - 1, 1)))


def place(notes: Sequence[tuple[float, np.ndarray]], total_s: float) -> np.ndarray:
    """Mix notes at their onsets (seconds) into one buffer."""
    out = np.zeros(int(round(total_s * RATE)))
    for onset, x in notes:
        i = int(round(onset * RATE))
        m = min(len(x), len(out) - i)
        out[i:i + m] += x[:m]
    return out


def hz(midi: float) -> float:
    return float(440.0 * 2 ** ((midi - 69) / 12))


MARIMBA: Partials = [(1, 1.0, 14), (3.93, 0.35, 45), (9.2, 0.12, 90)]
BELL: Partials = [(1, 1.0, 6), (2, 0.55, 10), (3, 0.35, 14), (4.2, 0.25, 22), (5.4, 0.12, 30)]
FLUTE: Partials = [(1, 1.0, 1.5), (2, 0.12, 2), (3, 0.04, 3)]
SAW: Partials = [(k, 1.0 / k, 8 + k) for k in range(1, 40)]
CLARINET: Partials = [(1, 1.0, 2), (3, 0.45, 3), (5, 0.25, 4), (7, 0.12, 5), (9, 0.06, 6)]
WOODBLOCK: Partials = [(1, 1.0, 70), (2.76, 0.6, 110), (5.4, 0.2, 160)]
SINE: Partials = [(1, 1.0, 0), (2, 0.06, 0)]
ORGAN: Partials = [(1, 1.0, 1), (2, 0.35, 1), (3, 0.18, 1), (4, 0.08, 1)]
HOLLOW: Partials = [(k, 1.0 / k**2, 4) for k in (1, 3, 5, 7, 9)]  # triangle-like
SQUARE: Partials = [(k, 1.0 / k, 2) for k in (1, 3, 5, 7, 9, 11)]


def _nasal(f_mid: float) -> Partials:
    """Buzzy partials shaped by two formants (about 1.1 and 2.5 kHz): a nasal 'nyeh'."""
    parts = []
    for k in range(1, 30):
        f = k * f_mid
        res = np.exp(-(((f - 1100) / 260) ** 2)) + 0.6 * np.exp(-(((f - 2500) / 380) ** 2))
        parts.append((float(k), float((0.15 + res) / np.sqrt(k)), 3.0))
    return parts


def happy() -> np.ndarray:
    # C5 E5 G5 rising major arpeggio, struck marimba, quick even rhythm.
    notes = [(i * 0.07, voice(hz(m), 0.16, MARIMBA, 0.002, 0.03)) for i, m in enumerate((72, 76, 79))]
    return place(notes, 0.30)


def surprise() -> np.ndarray:
    # A5 grace note leaping up an octave to a bright bell that bends up a semitone: short-long.
    grace = voice(hz(81), 0.05, BELL, 0.002, 0.015)
    bend = np.concatenate([np.full(int(0.05 * RATE), hz(93)), glide(hz(93), hz(94), 0.15)])
    long = voice(bend, 0.20, BELL, 0.002, 0.05)
    return place([(0.0, grace), (0.07, long)], 0.28)


def sad() -> np.ndarray:
    # E4 to C#4: falling minor third, slow legato, soft flute with vibrato, low-mid register.
    a = voice(hz(64), 0.15, FLUTE, 0.03, 0.03, vibrato=(5.0, 0.006))
    b = voice(hz(61), 0.17, FLUTE, 0.02, 0.08, vibrato=(5.0, 0.006))
    return place([(0.0, a), (0.13, b)], 0.30)


def angry() -> np.ndarray:
    # G3 Eb3 C3: descending minor triad, fast staccato, rough detuned sawtooth, low register.
    notes = []
    for i, m in enumerate((55, 51, 48)):
        x = voice(hz(m), 0.06, SAW, 0.002, 0.012) + 0.7 * voice(hz(m) * 1.013, 0.06, SAW, 0.002, 0.012)
        notes.append((i * 0.075, x))
    return place(notes, 0.22)


def fear() -> np.ndarray:
    # B4 to Bb4: falling minor second, trembling (fast tremolo, wide vibrato), clarinet-like.
    a = voice(hz(71), 0.15, CLARINET, 0.01, 0.01, vibrato=(7.0, 0.012), tremolo=(16.0, 0.8))
    b = voice(hz(70), 0.14, CLARINET, 0.005, 0.05, vibrato=(7.0, 0.012), tremolo=(16.0, 0.8))
    return place([(0.0, a), (0.14, b)], 0.28)


def disgust() -> np.ndarray:
    # F4 sliding down to D4 (a falling minor third as one bend), nasal buzz with a slow wobble.
    f = glide(hz(65), hz(62), 0.25)
    return voice(f, 0.25, _nasal(hz(63.5)), 0.015, 0.05, tremolo=(22.0, 0.35))


def neutral() -> np.ndarray:
    # A soft single woodblock tick: present, but says nothing.
    return place([(0.0, voice(hz(83), 0.07, WOODBLOCK, 0.001, 0.02))], 0.07)


def face_appeared() -> np.ndarray:
    # Pure rising glide (a fifth): 'something arrived'; no notes, so never an expression.
    return voice(glide(hz(72), hz(79), 0.12), 0.12, SINE, 0.01, 0.03)


def face_lost() -> np.ndarray:
    # The mirror image, an octave lower and slower to fade: 'something went away'.
    return voice(glide(hz(67), hz(60), 0.16), 0.16, SINE, 0.01, 0.07)


CHIME: Partials = [(1, 1.0, 9), (2.0, 0.18, 16), (3.01, 0.06, 24)]  # soft struck sine


def facing() -> np.ndarray:
    # Soft struck chime, a rising fourth E6-A6, gentle attack: 'someone turned to you'.
    return place([(0.0, voice(hz(88), 0.14, CHIME, 0.008, 0.04)),
                  (0.09, voice(hz(93), 0.19, CHIME, 0.008, 0.08))], 0.28)


def looked_away() -> np.ndarray:
    # The same chime falling a fourth, an octave lower: 'they turned away'.
    return place([(0.0, voice(hz(81), 0.14, CHIME, 0.008, 0.04)),
                  (0.09, voice(hz(76), 0.19, CHIME, 0.008, 0.08))], 0.28)


def nod() -> np.ndarray:
    # Two hollow taps, low then lower-and-back: a 'yes' bob, down-up in pitch (G3 dip to D3 and back).
    f = np.concatenate([glide(hz(55), hz(50), 0.09), glide(hz(50), hz(55), 0.11)])
    return voice(f, 0.20, HOLLOW, 0.004, 0.04, tremolo=(10.0, 0.7))


def shake() -> np.ndarray:
    # A sine wobbling quickly side to side (three swings of +-3 semitones round A4): 'no'.
    n = int(0.26 * RATE)
    t = np.arange(n) / RATE
    f = hz(69) * 2 ** (3 / 12 * np.sin(2 * np.pi * 7.5 * t))
    return voice(f, 0.26, [(1, 1.0, 2), (2, 0.3, 3), (3, 0.1, 4)], 0.01, 0.05)


def startup() -> np.ndarray:
    # C major chord swelling in on an organ: 'ready'.
    chord = sum(voice(hz(m), 0.30, ORGAN, 0.06, 0.12) for m in (60, 64, 67, 72))
    return np.asarray(chord)


def paused() -> np.ndarray:
    # Hollow G4 then C4, two detached notes going down: 'stopping'.
    return place([(0.0, voice(hz(67), 0.09, HOLLOW, 0.005, 0.02)),
                  (0.13, voice(hz(60), 0.11, HOLLOW, 0.005, 0.04))], 0.24)


def resumed() -> np.ndarray:
    return place([(0.0, voice(hz(60), 0.09, HOLLOW, 0.005, 0.02)),
                  (0.13, voice(hz(67), 0.11, HOLLOW, 0.005, 0.04))], 0.24)


def warning() -> np.ndarray:
    # Alternating B5/F#5 square tones, three pairs: the one sound meant to cut through.
    notes = [(i * 0.13, voice(hz(83 if i % 2 == 0 else 78), 0.10, SQUARE, 0.004, 0.015)) for i in range(6)]
    return place(notes, 0.78)


@dataclass(frozen=True)
class Spec:
    key: str
    meaning: str
    design: str
    make: Callable[[], np.ndarray]


SPECS: tuple[Spec, ...] = (
    Spec("angry", "the face looks angry",
         "falling minor triad G3-Eb3-C3, fast staccato, rough detuned sawtooth, low",
         angry),
    Spec("disgust", "the face looks disgusted",
         "one bend F4 down to D4 (minor third), nasal buzz with a slow wobble",
         disgust),
    Spec("fear", "the face looks afraid",
         "falling minor second B4-Bb4, trembling clarinet (tremolo + vibrato)",
         fear),
    Spec("happy", "the face is smiling",
         "rising major arpeggio C5-E5-G5, struck marimba, even quick rhythm",
         happy),
    Spec("sad", "the face looks sad",
         "falling minor third E4-C#4, slow legato soft flute with vibrato",
         sad),
    Spec("surprise", "the face looks surprised",
         "A5 grace note leaping an octave to a bright bell that bends up, short-long",
         surprise),
    Spec("neutral", "the face is neutral again",
         "one soft woodblock tick",
         neutral),
    Spec("face_appeared", "a face came into view",
         "pure sine glide up a fifth (C5 to G5)",
         face_appeared),
    Spec("face_lost", "the face left the view",
         "pure sine glide down a fifth, an octave lower (G4 to C4)",
         face_lost),
    Spec("facing", "the person turned to face you",
         "soft struck chime rising a fourth, E6 then A6",
         facing),
    Spec("looked_away", "the person turned away from you",
         "the same chime falling a fourth, an octave lower (A5 then E5)",
         looked_away),
    Spec("nod", "the person nodded",
         "low hollow tone dipping and coming back (G3 to D3 to G3), pulsed: a 'yes' bob",
         nod),
    Spec("shake", "the person shook their head",
         "a tone wobbling quickly side to side, three swings round A4: a 'no'",
         shake),
    Spec("startup", "fer-audio is running",
         "C major chord swelling in on an organ",
         startup),
    Spec("paused", "cues are paused",
         "two detached hollow notes going down, G4 then C4",
         paused),
    Spec("resumed", "cues are on again",
         "two detached hollow notes going up, C4 then G4",
         resumed),
    Spec("warning", "a problem (camera, audio, speech); a spoken message may follow",
         "alternating B5/F#5 square tones, three pairs",
         warning),
)
MAX_S = {"warning": 1.0}
DEFAULT_MAX_S = 0.30


def finish(x: np.ndarray) -> np.ndarray:
    """Short raised-cosine edges on the whole sound, so no earcon starts or ends on a step."""
    n = int(EDGE_FADE_S * RATE)
    y = np.asarray(x, dtype=np.float64).copy()
    y[:n] *= _raised_cosine(n)
    y[-n:] *= _raised_cosine(n)[::-1]
    return y


# --------------------------------------------------------------------------- measurement

def loudness_lufs(x: np.ndarray, rate: int = RATE) -> float:
    """BS.1770-4 integrated loudness of the sound looped to >= 3 s (see module docstring)."""
    import pyloudnorm

    reps = int(np.ceil(LOOP_MIN_S * rate / len(x)))
    return float(pyloudnorm.Meter(rate).integrated_loudness(np.tile(np.asarray(x, np.float64), reps)))


def _mel_filterbank(n_fft: int, rate: int, n_mels: int = 48, f_lo: float = 60.0,
                    f_hi: float = 12000.0) -> np.ndarray:
    def to_mel(f: np.ndarray | float) -> np.ndarray:
        return np.asarray(2595.0 * np.log10(1.0 + np.asarray(f) / 700.0))

    def from_mel(m: np.ndarray) -> np.ndarray:
        return np.asarray(700.0 * (10 ** (m / 2595.0) - 1.0))

    edges = from_mel(np.linspace(to_mel(f_lo), to_mel(f_hi), n_mels + 2))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / rate)
    fb = np.zeros((n_mels, len(freqs)))
    for i in range(n_mels):
        lo, mid, hi = edges[i], edges[i + 1], edges[i + 2]
        fb[i] = np.clip(np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)), 0.0, None)
    return fb


def log_mel(x: np.ndarray, rate: int = RATE, n_fft: int = 1024, hop: int = 240) -> np.ndarray:
    """Frames x bands, dB (power); the sound is padded by half a window on both sides."""
    x = np.pad(np.asarray(x, np.float64), (n_fft // 2, n_fft // 2))
    n_frames = 1 + (len(x) - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]
    spec = np.abs(np.fft.rfft(x[idx] * np.hanning(n_fft), axis=1)) ** 2
    mel = spec @ _mel_filterbank(n_fft, rate).T
    return np.asarray(10.0 * np.log10(mel + 1e-12))


def distance(a: np.ndarray, b: np.ndarray, rate: int = RATE) -> float:
    """RMS log-mel difference (dB) between two sounds, best over +-20 ms alignment."""
    return feature_distance(log_mel(a, rate), log_mel(b, rate))


def feature_distance(fa: np.ndarray, fb: np.ndarray, floor_db: float = 80.0, max_shift: int = 4) -> float:
    """:func:`distance` on precomputed :func:`log_mel` features."""
    floor = max(fa.max(), fb.max()) - floor_db
    n = max(len(fa), len(fb)) + 2 * max_shift

    def padded(f: np.ndarray, offset: int) -> np.ndarray:
        out = np.full((n, f.shape[1]), floor)
        out[offset : offset + len(f)] = np.maximum(f, floor)
        return out

    pa = padded(fa, max_shift)
    return min(
        float(np.sqrt(np.mean((pa - padded(fb, max_shift + s)) ** 2)))
        for s in range(-max_shift, max_shift + 1)
    )


def transpose(x: np.ndarray, semitones: float) -> np.ndarray:
    """Pitch shift by playing faster (duration shrinks accordingly): a pitch-only change."""
    factor = 2 ** (semitones / 12)
    pos = np.arange(0, len(x) - 1, factor)
    return np.asarray(np.interp(pos, np.arange(len(x)), x))


def pitch_only_reference(sounds: dict[str, np.ndarray], semitones: float = 2.0) -> float:
    """Median distance of each sound to itself a whole tone up: what pitch alone buys."""
    return float(np.median([distance(x, transpose(x, semitones)) for x in sounds.values()]))


def pairwise(sounds: dict[str, np.ndarray]) -> list[tuple[float, str, str]]:
    """Every pair's distance, closest first."""
    feats = {k: log_mel(x) for k, x in sounds.items()}
    keys = list(feats)
    return sorted(
        (feature_distance(feats[a], feats[b]), a, b) for i, a in enumerate(keys) for b in keys[i + 1 :]
    )


# --------------------------------------------------------------------------- main

def build() -> dict[str, np.ndarray]:
    """All earcons, edged and scaled to the loudness target (float64, mono, 48 kHz)."""
    raw = {s.key: finish(s.make()) for s in SPECS}
    out = {}
    for key, x in raw.items():
        gain = 10 ** ((TARGET_LUFS - loudness_lufs(x)) / 20)
        out[key] = x * gain
    peak = max(float(np.abs(x).max()) for x in out.values())
    if peak > MAX_PEAK:  # keep the common target, lower everything together
        out = {k: x * (MAX_PEAK / peak) for k, x in out.items()}
    return out


def write_readme(path: Path, rows: list[tuple[Spec, float, float, float]], spread: float,
                 min_pair: tuple[float, str, str], reference: float) -> None:
    lines = [
        "# Earcons",
        "",
        "Generated by `make_earcons.py` from numpy alone (no recorded samples); run",
        "`.venv/bin/python sounds/make_earcons.py` from the repository root to rebuild the WAVs",
        "and this file. 48 kHz, mono, 16-bit PCM. Mono on purpose: the player pans each cue to",
        "where the person is.",
        "",
        "Design follows Brewster's earcon guidelines: sounds differ in timbre, rhythm and",
        "register, not in pitch alone. Pleasant expressions (happy, surprise) are rising major",
        "figures on struck, bright timbres; unpleasant ones (angry, disgust, fear, sad) are",
        "falling minor figures on sustained, darker or rougher timbres; neutral is one soft",
        "tick. Face and system sounds have timbres of their own so they never read as an",
        "expression.",
        "",
        "| file | means | made of | ms | loudness (LUFS) | peak (dBFS) |",
        "|---|---|---|---:|---:|---:|",
    ]
    for spec, ms, lufs, peak_db in rows:
        lines.append(f"| {spec.key}.wav | {spec.meaning} | {spec.design} "
                     f"| {ms:.0f} | {lufs:.2f} | {peak_db:.1f} |")
    d, a, b = min_pair
    lines += [
        "",
        "## How it was measured",
        "",
        "- Loudness: ITU-R BS.1770-4 (pyloudnorm). Its gating works on 400 ms blocks, longer",
        "  than most earcons, so each sound is measured looped end to end to at least 3 s; a",
        "  loop is stationary, so the gates remove nothing and the figure is the K-weighted",
        "  mean power over the sound's own length. Every sound is scaled to the same target",
        f"  ({TARGET_LUFS:.0f} LUFS before any common reduction for peak headroom).",
        f"  Spread (max - min) after 16-bit rounding: {spread:.2f} dB.",
        "- Distinctness: log-mel spectrogram (48 bands, 60 Hz-12 kHz, 21 ms Hann windows, 5 ms",
        "  hop, dB with an 80 dB floor); distance = RMS difference in dB over time and bands,",
        "  minimised over +-20 ms alignment. Reference: a sound against itself transposed up a",
        f"  whole tone (median over the set) = {reference:.2f} dB, i.e. what a pitch-only change",
        "  gives. Every pair must differ by more than that.",
        f"  Closest pair: {a} / {b} at {d:.2f} dB.",
        "- Edges: every sound starts and ends with a 4 ms raised-cosine fade (no clicks).",
        "",
        "The player (fer_audio/audio.py) applies the master volume (default -12 dB) and each",
        "cue's gain on top of these levels; user sound files of any level can replace them",
        "through the [cues] section of the config.",
        "",
    ]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                        help="folder for the WAVs and README.md (default: this script's folder)")
    args = parser.parse_args(argv)
    import soundfile

    args.out.mkdir(parents=True, exist_ok=True)
    sounds = build()
    written: dict[str, np.ndarray] = {}
    for key, x in sounds.items():
        path = args.out / f"{key}.wav"
        soundfile.write(str(path), x, RATE, subtype="PCM_16")
        written[key], _ = soundfile.read(str(path), dtype="float64")  # measure what ships
    rows = []
    for spec in SPECS:
        x = written[spec.key]
        ms = 1000 * len(x) / RATE
        limit = MAX_S.get(spec.key, DEFAULT_MAX_S)
        if ms > 1000 * limit + 0.5:
            print(f"{spec.key}: {ms:.0f} ms is longer than {limit * 1000:.0f} ms", file=sys.stderr)
            return 1
        rows.append((spec, ms, loudness_lufs(x), 20 * np.log10(np.abs(x).max())))
    levels = [r[2] for r in rows]
    spread = max(levels) - min(levels)
    pairs = pairwise(written)
    reference = pitch_only_reference(written)
    print(f"{'sound':<14} {'ms':>5} {'LUFS':>7} {'peak dBFS':>9}")
    for spec, ms, lufs, peak_db in rows:
        print(f"{spec.key:<14} {ms:5.0f} {lufs:7.2f} {peak_db:9.1f}")
    d, a, b = pairs[0]
    print(f"loudness spread: {spread:.2f} dB")
    print(f"minimum pairwise distance: {d:.2f} dB ({a} / {b}); pitch-only reference: {reference:.2f} dB")
    print("closest five pairs: " + ", ".join(f"{x}/{y} {v:.2f}" for v, x, y in pairs[:5]))
    write_readme(args.out / "README.md", rows, spread, pairs[0], reference)
    ok = spread <= 2.0 and d > reference
    if not ok:
        print("earcon set fails its own checks (spread <= 2 dB, closest pair above reference)",
              file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
