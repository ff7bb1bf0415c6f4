"""How does a model hold up when faces look like a camera's, not like FER-2013's?

    python -m training.robustness --model models/card.json --data ../shared/data/fer2013.npz \
        --real ../shared/data/realfaces96.npz --write-card

FER-2013's faces are bright, upright, frontal and 48 px; a camera in a room
gives dim, rolled, turned and small ones. Each PublicTest face is changed in
one way at a time (darkened by gamma, dimmed, rolled, squeezed as by a turned
head, blurred, shrunk to 24 px and back) and classified; every condition is
also measured with a per-face contrast step in front of the model
(histogram equalisation, CLAHE), which is how such a step was judged here.
Rolled faces are measured twice more: placed in a camera frame, found by
YuNet and cropped by the runtime's own code with and without levelling the
eyes. The real-photo probe (``--real``, 1,530 press photographs, evaluation
only) is each image resized straight to 48×48, as its README says, and
again through the runtime path (in a frame, YuNet, the runtime's crop).
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fer_audio.config import DetectorConfig, ModelConfig
from fer_audio.detection import make_detector
from fer_audio.emotion import EmotionModel, load_model
from fer_audio.preprocess import face_to_input
from training import data as fer_data
from training.card import command_line, update_card
from training.crop_gap import placed_and_found

Face = np.ndarray  # uint8 (48, 48)


def gamma(g: float) -> Callable[[Face], Face]:
    lut = np.clip(255.0 * (np.arange(256) / 255.0) ** g, 0, 255).astype(np.uint8)
    return lambda f: lut[f]


def dim(f: Face) -> Face:
    """A face in a dark room: a third of the contrast around a mean of ~40 grey levels."""
    x = f.astype(np.float32)
    return np.clip((x - x.mean()) * 0.35 + 40.0, 0, 255).astype(np.uint8)


def roll(deg: float) -> Callable[[Face], Face]:
    m = cv2.getRotationMatrix2D((23.5, 23.5), deg, 1.0)
    return lambda f: cv2.warpAffine(f, m, (48, 48), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def squeeze(f: Face) -> Face:
    """A head turned ~40°: the face 70% as wide, its far side foreshortened (a perspective warp)."""
    src = np.float32([[0, 0], [47, 0], [47, 47], [0, 47]])
    dst = np.float32([[7, 0], [40, 4], [40, 43], [7, 47]])
    return cv2.warpPerspective(f, cv2.getPerspectiveTransform(src, dst), (48, 48), borderMode=cv2.BORDER_REPLICATE)


def blur(f: Face) -> Face:
    return cv2.GaussianBlur(f, (0, 0), 1.5)


def shrink(f: Face) -> Face:
    return cv2.resize(cv2.resize(f, (24, 24), interpolation=cv2.INTER_AREA), (48, 48), interpolation=cv2.INTER_LINEAR)


CONDITIONS: dict[str, Callable[[Face], Face]] = {
    "clean": lambda f: f,
    "dark (gamma 2)": gamma(2.0),
    "dark (gamma 3)": gamma(3.0),
    "dim (contrast x0.35, mean 40)": dim,
    "rolled +25°": roll(25.0),
    "rolled -25°": roll(-25.0),
    "turned (squeeze + perspective)": squeeze,
    "blurred (sigma 1.5)": blur,
    "shrunk to 24 px": shrink,
}

_CLAHE = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4))
CONTRAST: dict[str, Callable[[Face], Face]] = {
    "as is": lambda f: f,
    "equalised": cv2.equalizeHist,
    "CLAHE": _CLAHE.apply,
}


def predict_labels(model: EmotionModel, faces: np.ndarray) -> np.ndarray:
    """Top label of each uint8 (48, 48) face, in batches."""
    return np.concatenate([model.predict_batch(faces[i:i + 256, :, :, None].astype(np.float32)).argmax(1)
                           for i in range(0, len(faces), 256)])


def accuracy(model: EmotionModel, faces: np.ndarray, labels: np.ndarray) -> float:
    return float((predict_labels(model, faces) == labels).mean())


def through_detector(model: EmotionModel, images: np.ndarray, labels: np.ndarray, deg: float,
                     seed: int = 0) -> dict[str, float]:
    """Rolled faces placed in a frame, found by YuNet, cropped with and without levelling the eyes."""
    detector = make_detector(DetectorConfig())
    rng = np.random.default_rng(seed)
    crops: dict[bool, list[Face]] = {True: [], False: []}
    hits: list[int] = []
    for i, gray, _, best in placed_and_found(images, detector, rng, roll_deg=deg):
        hits.append(i)
        for align in (False, True):
            crops[align].append(face_to_input(gray, best, model.card.crop_margin, align=align))
    y = labels[hits]
    return {"detected": len(hits) / len(images),
            "not levelled": accuracy(model, np.stack(crops[False]), y),
            "eyes levelled": accuracy(model, np.stack(crops[True]), y)}


def _recall(pred: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Recall of each expression with at least 50 photos (disgust and fear have 12)."""
    return {fer_data.LABELS[c]: float((pred[labels == c] == c).mean())
            for c in range(len(fer_data.LABELS)) if (labels == c).sum() >= 50}


def real_probe(model: EmotionModel, path: Path, seed: int = 0) -> dict[str, Any]:
    """The real photographs two ways: resized straight to 48×48, and as the runtime sees them.

    The second places each photo in a camera-sized frame (as the crop study does),
    finds it with YuNet and crops it with the runtime's own code (the card's margin,
    eyes levelled), so it is the number a user's camera path gets on real faces.
    """
    with np.load(path) as d:
        images, labels = d["images"], d["labels"].astype(np.int64)
    faces = np.stack([cv2.resize(f, (48, 48), interpolation=cv2.INTER_AREA) for f in images])
    pred = predict_labels(model, faces)
    detector = make_detector(DetectorConfig())
    rng = np.random.default_rng(seed)
    hits: list[int] = []
    crops: list[Face] = []
    for i, gray, _, best in placed_and_found(images, detector, rng):
        hits.append(i)
        crops.append(face_to_input(gray, best, model.card.crop_margin))
    idx = np.array(hits, dtype=np.int64)
    runtime: dict[str, Any] = {"detected": len(idx) / len(images), "margin": model.card.crop_margin}
    if len(idx):
        y = labels[idx]
        p_rt = predict_labels(model, np.stack(crops))
        runtime.update(accuracy=float((p_rt == y).mean()), resized_on_same=float((pred[idx] == y).mean()),
                       recall=_recall(p_rt, y))
    return {"n": int(len(labels)), "accuracy": float((pred == labels).mean()), "recall": _recall(pred, labels),
            "through_runtime": runtime}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=ModelConfig().card, help="a model card")
    ap.add_argument("--data", required=True, help="fer2013.npz (PublicTest is used)")
    ap.add_argument("--real", type=Path, default=None, help="realfaces96.npz, the real-photo probe")
    ap.add_argument("--limit", type=int, default=0, help="first N PublicTest faces (quick checks)")
    ap.add_argument("--write-card", action="store_true")
    args = ap.parse_args(argv)

    model = load_model(ModelConfig(card=args.model))
    pub = fer_data.load(args.data).split("public")
    n = args.limit or len(pub)
    images, labels = pub.images[:n], pub.labels[:n].astype(np.int64)
    table: dict[str, dict[str, float]] = {}
    for name, change in CONDITIONS.items():
        changed = np.stack([change(f) for f in images])
        table[name] = {c: accuracy(model, np.stack([norm(f) for f in changed]), labels)
                       for c, norm in CONTRAST.items()}
        print(f"{name:32s} " + "  ".join(f"{c} {100 * a:5.2f}%" for c, a in table[name].items()), flush=True)
    detector_roll = {f"{deg:+.0f}°": through_detector(model, images, labels, deg) for deg in (25.0, -25.0)}
    for k, r in detector_roll.items():
        print(f"rolled {k} in a frame, YuNet + crop: detected {100 * r['detected']:.1f}%, "
              f"not levelled {100 * r['not levelled']:.2f}%, eyes levelled {100 * r['eyes levelled']:.2f}%", flush=True)
    result: dict[str, Any] = {"split": "PublicTest", "faces": int(n), "by_condition": table,
                              "rolled_through_detector": detector_roll}
    if args.real:
        result["realfaces96"] = real = real_probe(model, args.real)
        print(f"real-photo probe: {100 * real['accuracy']:.2f}% of {real['n']}; recall "
              + ", ".join(f"{k} {100 * v:.1f}%" for k, v in real["recall"].items()), flush=True)
        rt = real["through_runtime"]
        if "accuracy" in rt:
            print(f"real photos in a frame, YuNet + runtime crop (margin {rt['margin']:+.2f}, eyes levelled): "
                  f"detected {100 * rt['detected']:.1f}%, {100 * rt['accuracy']:.2f}% "
                  f"(resized straight, same photos: {100 * rt['resized_on_same']:.2f}%); recall "
                  + ", ".join(f"{k} {100 * v:.1f}%" for k, v in rt["recall"].items()), flush=True)
    result.update(date=dt.date.today().isoformat(),
                  command=command_line("training.robustness", argv))
    if args.write_card:
        update_card(args.model, robustness=result)
        print(f"robustness written to {args.model}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
