"""Event-to-audio latency through PortAudio into a PulseAudio null sink, plus earcon statistics.

    .venv/bin/python benchmarks/audio_latency.py [--n 30] [--latency 0.04]

Starts a private PulseAudio with a null sink (as the tests do; needs pulseaudio,
pulseaudio-utils and libasound2-plugins), plays N earcons through the real
AudioOut/DeviceSink on the ALSA ``pulse`` device, records the sink's monitor with
parec, finds each earcon in the recording by normalised cross-correlation, and
reports the time from each ``play()`` call to the earcon's first sample in the
recording. The recorder's clock offset comes from the least-delayed chunk it
received, so capture delay left in it makes the numbers larger; a null sink renders
each block a little ahead of its nominal time, which can make one reading up to a
block (~10-20 ms) smaller. The median is robust to both.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "sounds"))

import make_earcons  # noqa: E402
from pulse import (  # noqa: E402
    RATE,
    Recorder,
    existing_server,
    missing_tools,
    normalised_correlation,
    start_private_server,
)

from fer_audio.audio import AudioOut  # noqa: E402
from fer_audio.config import AudioConfig, Config  # noqa: E402
from fer_audio.resources import LABELS, SOUNDS_DIR  # noqa: E402
from fer_audio.sinks import (  # noqa: E402
    DEVICE_LATENCY_S,  # noqa: E402
    AudioDeviceError,
    DeviceSink,
)
from fer_audio.sound import load_sound  # noqa: E402

KEYS = (*LABELS, "face_appeared", "face_lost")


@dataclass(frozen=True)
class Cue:
    key: str
    mode: str
    earcon: Path | None
    text: str
    gain_db: float
    pan: float
    event_t: float = 0.0
    track: int = 1


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def earcon_stats() -> None:
    sounds = {}
    for wav in sorted(SOUNDS_DIR.glob("*.wav")):
        import soundfile

        sounds[wav.stem], _ = soundfile.read(str(wav), dtype="float64")
    durations = {k: 1000 * len(x) / RATE for k, x in sounds.items()}
    levels = {k: make_earcons.loudness_lufs(x) for k, x in sounds.items()}
    closest, a, b = make_earcons.pairwise(sounds)[0]
    reference = make_earcons.pitch_only_reference(sounds)
    longest = max(durations, key=durations.__getitem__)
    short = {k: v for k, v in durations.items() if k != "warning"}
    print(f"earcons: {len(sounds)} files; durations {min(durations.values()):.0f}-{max(short.values()):.0f} ms "
          f"(warning {durations.get('warning', 0):.0f} ms; longest {longest})")
    print(f"earcon loudness (BS.1770, looped): {min(levels.values()):.2f} to {max(levels.values()):.2f} LUFS, "
          f"spread {max(levels.values()) - min(levels.values()):.2f} dB")
    print(f"closest pair: {a}/{b} {closest:.2f} dB log-mel RMS (pitch-only reference {reference:.2f} dB)")


def measure(n: int, latency: float | str, spacing: float) -> int:
    reason = missing_tools()
    if reason:
        print(f"cannot measure: {reason}")
        return 1
    server = existing_server()
    owned = server is None
    if server is None:
        server = start_private_server()
    server.export_env()
    try:
        cfg = Config()
        audio = AudioConfig(output="device", device="pulse", master_db=-6.0)
        sink = DeviceSink(audio.sample_rate, audio.master_db, audio.device, latency=latency)
        try:
            sink.open()
        except AudioDeviceError as exc:
            print(f"cannot measure: {exc}")
            return 1
        stream_latency = sink.stream_latency_s
        out = AudioOut(audio, cfg.speech, cfg.cues, sink=sink)
        templates = {k: load_sound(SOUNDS_DIR / f"{k}.wav", RATE).data for k in KEYS}
        rng = np.random.default_rng(7)
        plays: list[tuple[str, float]] = []
        with Recorder(server) as rec:
            time.sleep(0.5)
            for i in range(n):
                key = KEYS[i % len(KEYS)]
                called = time.monotonic()
                out.play(Cue(key, "earcon", SOUNDS_DIR / f"{key}.wav", "", 0.0, float(rng.uniform(-0.8, 0.8))),
                         float(i))
                plays.append((key, called))
                time.sleep(spacing + float(rng.uniform(0, 0.05)))  # jitter: not locked to the block clock
            time.sleep(0.5)
        underflows = out.status().underflows
        out.close()
        mono = rec.audio().astype(np.float64).sum(axis=1)
        start = rec.time_of(0)
        lat: list[float] = []
        missed = 0
        for key, called in plays:
            t = templates[key]
            lo = max(0, int((called - start) * RATE) - RATE // 20)
            hi = min(len(mono), lo + int(0.6 * RATE) + len(t))
            corr = normalised_correlation(mono[lo:hi], t)
            if corr.size == 0 or corr.max() < 0.9:
                missed += 1
                continue
            at = lo + int(np.argmax(corr))
            lat.append(rec.time_of(at) - called)
        print(f"PortAudio stream latency (reported): {1000 * (stream_latency or 0):.1f} ms; "
              f"suggested {latency if isinstance(latency, str) else f'{1000 * latency:.0f} ms'}")
        if not lat:
            print(f"no earcon found in the recording ({missed} missed)")
            return 1
        ms = [1000 * x for x in lat]
        print(f"event-to-audio latency over {len(ms)} cues ({missed} not found, {underflows} underflows): "
              f"median {statistics.median(ms):.1f} ms, p95 {percentile(ms, 95):.1f} ms, "
              f"min {min(ms):.1f} ms, max {max(ms):.1f} ms")
        return 0 if missed == 0 else 1
    finally:
        server.restore_env()
        if owned:
            server.discard()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--n", type=int, default=30, help="cues to play (default 30)")
    ap.add_argument("--latency", default=str(DEVICE_LATENCY_S),
                    help="PortAudio suggested latency in seconds, or 'low'/'high' (default: the player's)")
    ap.add_argument("--spacing", type=float, default=0.45, help="seconds between cues")
    ap.add_argument("--no-earcons", action="store_true", help="skip the earcon statistics")
    args = ap.parse_args(argv)
    latency: float | str = args.latency if args.latency in ("low", "high") else float(args.latency)
    if not args.no_earcons:
        earcon_stats()
    return measure(args.n, latency, args.spacing)


if __name__ == "__main__":
    sys.exit(main())
