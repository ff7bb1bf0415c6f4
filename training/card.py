"""The model card (models/card.json) as the training tools read and write it.

Every tool that measures the shipped model (crop study, thresholds, robustness,
evaluation, export) stores its result in the card with the date and the command
that produced it. They share this module so that the card is always written the
same way: whole or not at all (a crash halfway through a write must not leave a
truncated card that the service then refuses to load).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def command_line(module: str, argv: Sequence[str] | None = None) -> str:
    """How the result was made, as a reader would type it: ``python -m <module> <args>``."""
    args = list(argv) if argv is not None else sys.argv[1:]
    return " ".join(["python -m", module, *args])


def read_card(path: Path) -> dict[str, Any]:
    card: dict[str, Any] = json.loads(Path(path).read_text())
    return card


def write_card(path: Path, card: dict[str, Any]) -> None:
    """Write ``card`` to ``path`` atomically: a temporary file in the same folder, then a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=".card-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(card, indent=2) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def update_card(path: Path, **sections: Any) -> dict[str, Any]:
    """Set top-level ``sections`` of the card at ``path``, keep everything else; returns the new card."""
    card = read_card(path)
    card.update(sections)
    write_card(path, card)
    return card


def shipped_variant(card: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The .tflite variant that runs and what the export measured of it ({} on cards from before
    variants were measured, which shipped float32)."""
    e = card.get("export", {})
    name = e.get("shipped", "float32")
    return name, e.get("variants", {}).get(name, {})


def flip_average(card: dict[str, Any]) -> bool:
    """Whether the service averages each face with its mirror image (absent on older cards: no)."""
    return bool((card.get("predictor") or {}).get("flip_average", False))


def members(card: dict[str, Any]) -> list[dict[str, Any]]:
    """The networks averaged with the card's own (``predictor.members``; none on most cards)."""
    return list((card.get("predictor") or {}).get("members") or [])


def predictor_words(card: dict[str, Any]) -> str:
    """How the service runs the shipped networks, in words; "" for one network, one look."""
    p = card.get("predictor") or {}
    flip, n = bool(p.get("flip_average")), 1 + len(members(card))
    if n == 1:
        return "flip-averaged" if flip else ""
    words = f"ensemble of {n}"
    if flip:
        words += ", face and mirror image split between them" if p.get("split_views") else ", flip-averaged"
    return words


def _chosen(card: dict[str, Any]) -> dict[str, Any] | None:
    """What the export measured of the predictor it chose (cards from before it measured several: None)."""
    p = card.get("predictor") or {}
    conf = (p.get("configurations") or {}).get(p.get("chosen"))
    return conf if isinstance(conf, dict) else None


def shipped_public_accuracy(card: dict[str, Any]) -> float | None:
    """PublicTest accuracy of what runs: the shipped predictor's (its .tflite files, flip-averaged or
    an ensemble as the card says), else (older cards) the float network's. This is the number a new
    model must beat to ship (training/ship.sh)."""
    conf = _chosen(card)
    if conf is not None:
        return float(conf["public_accuracy"])
    _, v = shipped_variant(card)
    acc = v.get("public_accuracy", card.get("metrics", {}).get("public", {}).get("accuracy"))
    if flip_average(card):
        acc = v["public_accuracy_flip"]
    return None if acc is None else float(acc)


def shipped_ms(card: dict[str, Any]) -> float:
    """Milliseconds per face of what runs (LiteRT, batch 1, 2 threads, as the export timed it)."""
    conf = _chosen(card)
    if conf is not None:
        return float(conf["ms_per_face_batch1"])
    _, v = shipped_variant(card)
    return float(v.get("ms_per_face_batch1_flip" if flip_average(card) else "ms_per_face_batch1", float("nan")))


def summary(card: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of a shipped model, kept in its successor's card (``predecessors``)
    so that the card and its tables can show before and after without the old files."""
    m = card.get("metrics", {})
    rob = card.get("robustness", {})
    return {
        "name": card.get("name"),
        "exported": card.get("exported"),
        "best_epoch": card.get("training", {}).get("best_epoch"),
        "tflite_sha256": card.get("files", {}).get("tflite", {}).get("sha256"),
        "public_accuracy": shipped_public_accuracy(card),
        "flip_average": flip_average(card),
        "predictor": predictor_words(card),
        "predictor_private_accuracy": ((m.get("predictor") or {}).get("private") or {}).get("accuracy"),
        "private": {k: m["private"][k] for k in ("accuracy", "macro_f1", "ferplus_majority_accuracy",
                                                 "per_class_recall") if k in m["private"]}
        if "private" in m else None,
        "robustness_as_is": {c: v["as is"] for c, v in rob.get("by_condition", {}).items() if "as is" in v},
        "realfaces96": rob.get("realfaces96"),
    }
