"""The `fer` package's side of throughput.py. Runs under benchmarks/.venv-peer/bin/python, never fer-audio's.

A small server: started once per variant (so TensorFlow loads once), it reads
requests on stdin, one JSON object a line, ``{"clip": path, "seconds": s}``,
and answers each with one JSON line on stdout. What it times is what a `fer`
user's loop does per frame: decode the frame, then ``FER.detect_emotions``.

Variants (``--variant``):
  default  ``FER()``: its defaults, Haar cascade (mtcnn=False) and, in fer 25.x, use_tflite=True
  keras    ``FER(use_tflite=False)``: the Keras .hdf5 model that fer versions before 25 always used
  mtcnn    ``FER(mtcnn=True)``: needs facenet-pytorch (PyTorch); reported as unavailable without it

It imports nothing from fer_audio, so it runs in an environment without it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def make_detector(variant: str) -> Any:
    import warnings

    warnings.filterwarnings("ignore")
    try:
        from fer import FER
    except ImportError:  # fer 25.x no longer re-exports FER from the package
        from fer.fer import FER

    if variant == "default":
        return FER()
    if variant == "keras":
        return FER(use_tflite=False)
    if variant == "mtcnn":
        return FER(mtcnn=True)
    raise SystemExit(f"unknown variant {variant!r}")


def measure(fer: Any, clip: str, seconds: float) -> dict[str, Any]:
    import cv2

    cap = cv2.VideoCapture(clip)
    if not cap.isOpened():
        return {"error": f"{clip}: cannot be opened"}
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    # Frames with t <= seconds, the rule fer-audio's max_seconds follows.
    limit = int(seconds * fps + 1e-6) + 1 if seconds > 0 else 1 << 30
    frames = faces = 0
    t0 = time.perf_counter()
    while frames < limit:
        ok, image = cap.read()
        if not ok:
            break
        faces += len(fer.detect_emotions(image))
        frames += 1
    elapsed = time.perf_counter() - t0
    cap.release()
    return {"frames": frames, "seconds": elapsed, "fps": frames / elapsed if elapsed > 0 else 0.0,
            "faces_per_frame": faces / frames if frames else 0.0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", default="default", choices=("default", "keras", "mtcnn"))
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    t0 = time.perf_counter()
    try:
        fer = make_detector(args.variant)
        import fer as fer_pkg

        version = getattr(fer_pkg, "__version__", "?")
    except Exception as exc:  # any reason it cannot run is a result to report, not a crash
        print(json.dumps({"ready": False, "error": f"{type(exc).__name__}: {exc}".splitlines()[0]}), flush=True)
        return 0
    print(json.dumps({"ready": True, "version": version, "load_s": time.perf_counter() - t0}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        try:
            reply = measure(fer, req["clip"], float(req.get("seconds", 0)))
        except Exception as exc:
            reply = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
        print(json.dumps(reply), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
