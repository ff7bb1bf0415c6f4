"""Cost of each pipeline stage in milliseconds, so the next optimisation is obvious.

    python benchmarks/stages.py [--min-s 1.0]

Each stage is timed on its own, on real inputs: frames of the benchmark
clips (640x480, real PrivateTest faces), the detector's own boxes, the
shipped model, the real smoother, planner, presenter and mixer. The table
ends with a per-frame budget for 1, 3 and 6 faces built from the parts,
and the share of the largest part.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Run, clip, quiet_logs, table, time_per_call, write_result  # noqa: E402

from fer_audio.config import Config  # noqa: E402
from fer_audio.types import Box, Event, Observation  # noqa: E402

BATCHES = (1, 3, 6, 16)


def frame_of(name: str, t: float = 2.5) -> np.ndarray:
    cap = cv2.VideoCapture(str(clip(name)))
    cap.set(cv2.CAP_PROP_POS_MSEC, t * 1000)
    ok, frame = cap.read()
    cap.release()
    if not ok:
        raise SystemExit(f"cannot read {name} at {t} s")
    return np.asarray(frame)


def decode_cost(min_s: float) -> dict[str, float]:
    path = str(clip("faces3"))
    cap = [cv2.VideoCapture(path)]

    def read() -> None:
        ok, _ = cap[0].read()
        if not ok:  # rewind by reopening: what a looping source does
            cap[0].release()
            cap[0] = cv2.VideoCapture(path)
            cap[0].read()

    out = time_per_call(read, min_s=min_s)
    cap[0].release()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--min-s", type=float, default=1.0, help="seconds each stage is timed for")
    ap.add_argument("--name", default="stages")
    args = ap.parse_args(argv)
    run = Run(args.name)
    print(run.note())
    from fer_audio.cues import CuePlanner, CuePresenter
    from fer_audio.detection import make_detector
    from fer_audio.emotion import load_model
    from fer_audio.mixer import Mixer
    from fer_audio.preprocess import faces_to_batch
    from fer_audio.smoothing import Smoother
    from fer_audio.sound import load_sound
    from fer_audio.tracking import Tracker

    cfg = Config()
    m = args.min_s
    rows: list[list[Any]] = []
    res: dict[str, Any] = {}

    def add(key: str, label: str, r: dict[str, float], per: int = 1) -> None:
        res[key] = {**r, "per": per}
        note = f"{r['median_ms'] / per:.3f} ms per face" if per > 1 else ""
        rows.append([label, r["median_ms"], r["p90_ms"], r["calls"], note])

    add("decode", "decode 640x480 mp4v frame", decode_cost(m))

    frames = {n: frame_of(n) for n in ("faces1", "faces3", "faces6")}
    with quiet_logs():
        yunet = make_detector(cfg.detector)
        haar = make_detector(cfg.detector.model_copy(update={"backend": "haar"}))
        model = load_model(cfg.model)
    boxes = {name: yunet.detect(f) for name, f in frames.items()}
    for name, frame in frames.items():
        add(f"yunet_{name}", f"detect YuNet @{cfg.detector.detect_width} px, {len(boxes[name])} face(s)",
            time_per_call(partial(yunet.detect, frame), min_s=m))
    for width in (160, 640):
        if width == cfg.detector.detect_width:
            continue
        other = make_detector(cfg.detector.model_copy(update={"detect_width": width}))
        found = len(other.detect(frames["faces3"]))
        add(f"yunet_w{width}", f"detect YuNet @{width} px, faces3 ({found} found)",
            time_per_call(partial(other.detect, frames["faces3"]), min_s=m))
    found = len(haar.detect(frames["faces3"]))
    add("haar_faces3", f"detect Haar @{cfg.detector.detect_width} px, faces3 ({found} found)",
        time_per_call(lambda: haar.detect(frames["faces3"]), min_s=m))

    f6 = frames["faces6"]
    many = (boxes["faces6"] * 3)[:16]
    margin = model.card.crop_margin
    for n in BATCHES:
        bx = many[:n]
        add(f"crop_{n}", f"crop+resize to 48x48, {n} face(s)", time_per_call(partial(faces_to_batch, f6, bx, margin), min_s=m),
            per=n)
    for n in BATCHES:
        batch = faces_to_batch(f6, many[:n], margin)
        model.predict_batch(batch)  # resizes the interpreter once, outside the timing
        add(f"model_b{n}", f"model, batch of {n}", time_per_call(partial(model.predict_batch, batch), min_s=m),
            per=n)
    with quiet_logs():
        model1 = load_model(cfg.model.model_copy(update={"threads": 1}))
    for n in (1, 6):
        batch = faces_to_batch(f6, many[:n], margin)
        model1.predict_batch(batch)
        add(f"model_b{n}_t1", f"model, batch of {n}, 1 thread (config: {cfg.model.threads})",
            time_per_call(partial(model1.predict_batch, batch), min_s=m), per=n)
    one = faces_to_batch(f6, many[:1], margin)

    def singles(k: int) -> None:
        for _ in range(k):
            model.predict_batch(one)

    model.predict_batch(one)
    add("model_6x1", "model, 6 faces one at a time", time_per_call(lambda: singles(6), min_s=m), per=6)

    tracker = Tracker(cfg.tracker)
    b3 = boxes["faces3"]
    jitter = [[Box(b.x + (i % 3), b.y, b.w, b.h, b.score) for b in b3] for i in range(3)]
    k = [0]

    def track() -> None:
        k[0] += 1
        tracker.update(jitter[k[0] % 3], 640, 480)

    add("tracker_3", "tracker update, 3 faces", time_per_call(track, min_s=m))

    labels = model.labels
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(len(labels)), size=(64, 6)).astype(np.float32)
    for n in (1, 3, 6):
        sm = Smoother(cfg.smoothing, labels)
        step = [0]

        def smooth(sm: Smoother = sm, n: int = n, step: list[int] = step) -> None:
            step[0] += 1
            i = step[0]
            sm.step(i / 15.0, [Observation(j + 1, probs[i % 64, j], 0.0, 0.3) for j in range(n)])

        add(f"smoother_{n}", f"smoother step, {n} face(s)", time_per_call(smooth, min_s=m))

    planner = CuePlanner(cfg.cues, cfg.audio)
    presenter = CuePresenter(cfg.audio)
    tick = [0.0]

    def cues_idle() -> None:
        tick[0] += 1 / 15
        presenter.present(planner.plan([]), tick[0])

    add("cues_idle", "planner+presenter, no event (most frames)", time_per_call(cues_idle, min_s=m))
    def cues_event() -> None:
        tick[0] += 1 / 15
        presenter.present(planner.plan([Event(tick[0], 1, "expression", "happy", 0.8, 0.1, 0.3)]), tick[0])

    add("cues_event", "planner+presenter, one expression event", time_per_call(cues_event, min_s=m))

    rate = cfg.audio.sample_rate
    sound = load_sound(Path(cfg.cues["happy"].earcon or ""), rate)
    block = rate // 100
    for voices in (0, 1, 4):
        mixer = Mixer(rate, cfg.audio.master_db)

        def render(mixer: Mixer = mixer, voices: int = voices) -> None:
            if mixer.active < voices:
                for _ in range(voices - mixer.active):
                    mixer.add(sound, 0.0, 0.3)
            mixer.render(block)

        add(f"mixer_{voices}", f"mixer render 10 ms block, {voices} voice(s)", time_per_call(render, min_s=m))

    print()
    print("per-stage cost, milliseconds (median and 90th percentile of many calls)")
    print(table(["stage", "median ms", "p90 ms", "calls", ""], rows))

    # Per-frame budget from the parts: what one analysed frame costs with n faces.
    budget_rows = []
    budgets: dict[str, Any] = {}
    for n, name in ((1, "faces1"), (3, "faces3"), (6, "faces6")):
        crop_key = f"crop_{n}" if n in BATCHES else None
        parts = {
            "decode": res["decode"]["median_ms"],
            "detect": res[f"yunet_{name}"]["median_ms"],
            "crop": res[crop_key]["median_ms"] if crop_key else 0.0,
            "model": res[f"model_b{n}"]["median_ms"],
            "tracker+smoother+cues": res["tracker_3"]["median_ms"] + res[f"smoother_{n}"]["median_ms"]
            + res["cues_idle"]["median_ms"],
        }
        total = sum(parts.values())
        top = max(parts, key=lambda p: parts[p])
        budgets[name] = {"parts_ms": parts, "total_ms": total, "fps_bound": 1000 / total, "largest": top}
        budget_rows.append([n, *[parts[p] for p in parts], total, 1000 / total, f"{top} {100 * parts[top] / total:.0f}%"])
    print()
    print("per-frame budget from the parts (ms); audio runs per 10 ms block, outside the frame")
    print(table(["faces", "decode", "detect", "crop", "model", "track+smooth+cues", "total", "fps bound",
                 "largest"], budget_rows))
    print(run.note())
    write_result(args.name, run, {"stages": res, "budget": budgets,
                                  "detect_width": cfg.detector.detect_width})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
