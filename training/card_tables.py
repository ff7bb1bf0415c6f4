"""The model card's numbers as markdown tables, so MODEL_CARD.md and the README say what card.json says.

    python -m training.card_tables --update models/MODEL_CARD.md README.md
    python -m training.card_tables --check models/MODEL_CARD.md README.md   # exit 1 if a table is stale

A page opts in with a pair of markers around each table it shows:

    <!-- card:results -->
    (made by this module; edits between the markers are overwritten)
    <!-- /card:results -->

Tables: results, exports, crop, robustness, thresholds, summary, curve, calibration,
schedules. Each is made from the card alone (rendering is pure), so a test can check that
the committed pages match the committed card, and a newly shipped model's pages are one
command away from right.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from training.card import members, predictor_words, read_card, shipped_ms, shipped_public_accuracy, shipped_variant
from training.schedules import LAST, plateau

Card = dict[str, Any]


def pct(x: float | None, digits: int = 2) -> str:
    return "—" if x is None else f"{100 * x:.{digits}f}%"


def cmd(command: str | None) -> str:
    """A command as shown: a free-text ``--note`` is in the card, not repeated in the table."""
    return "—" if not command else command.split(" --note ")[0]


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _before(card: Card) -> list[dict[str, Any]]:
    """Two models shipped before this one: the one it replaced and the last other network.

    A run ships several epochs of one network; comparing only with its own earlier
    epochs would hide what the change of network bought, so the second column is the
    newest predecessor of another name (or, where there is none, the next newest).
    """
    older = list(card.get("predecessors") or [])
    if len(older) <= 2:
        return older
    other = next((p for p in older[1:] if p.get("name") != card.get("name")), older[1])
    return [older[0], other]


def _label(p: dict[str, Any], card: Card) -> str:
    """A predecessor's column: its name, and its epoch where it shares this model's name; and how it
    ran where the network is the one shipped now (only the predictor changed: a member joined)."""
    epoch = f", epoch {p['best_epoch']}" if p.get("name") == card.get("name") and p.get("best_epoch") else ""
    same = epoch and p.get("best_epoch") == card.get("training", {}).get("best_epoch")
    ran = f", {p['predictor']}" if same and p.get("predictor") else ", one look" if same else ""
    return f"{p['name']}{epoch}{ran} (before)"


def _head(*cells: str) -> list[str]:
    """A table's header row and its rule: the first column text, the others numbers."""
    return [_row(*cells), "|---|" + "---:|" * (len(cells) - 1)]


def _ms(card: Card, v: dict[str, Any]) -> float:
    """Milliseconds per face of what runs: every look of every network the predictor takes."""
    return shipped_ms(card)


def _files(card: Card) -> str:
    return "the files" if members(card) else "the file"


def results(card: Card) -> str:
    """Accuracy, macro-F1, FER+, calibration and recall per class on both test splits.

    The single model (no test-time augmentation) is the number the issue counts; a
    flip-averaged predictor's own columns sit beside it.
    """
    m = card.get("metrics", {})
    pub, priv = m.get("public", {}), m.get("private", {})
    pred = m.get("predictor") or {}
    words = predictor_words(card)
    flips = bool(words)
    cols: list[tuple[dict[str, Any], bool]] = [(pub, False), (priv, True)]
    if flips:
        cols += [(pred.get("public") or {}, False), (pred.get("private") or {}, True)]
        out = _head("measure", "PublicTest, single model (the trained network; chose the epoch)",
                    "PrivateTest, single model (the shipped file, no test-time augmentation)",
                    f"PublicTest, shipped predictor ({_files(card)}, {words})",
                    f"PrivateTest, shipped predictor ({words})")
    else:
        out = _head("measure", "PublicTest (the trained network; chose the epoch)",
                    "PrivateTest (the shipped file; read once)")

    def line(what: str, cell: Callable[[dict[str, Any], bool], str]) -> None:
        out.append(_row(what, *[cell(r, bold) for r, bold in cols]))

    line("accuracy" if flips else "accuracy (single model, no test-time augmentation)",
         lambda r, bold: f"**{pct(r.get('accuracy'))}**" if bold else pct(r.get("accuracy")))
    line("macro-F1", lambda r, _: pct(r.get("macro_f1")))
    line("accuracy against the FER+ majority label", lambda r, _: pct(r.get("ferplus_majority_accuracy")))
    line("expected calibration error, raw → scaled",
         lambda r, _: f"{pct(r.get('ece_uncalibrated'))} → {pct(r.get('ece'))}")
    for label in card.get("labels", []):
        line(f"recall: {label}", lambda r, _, label=label: pct(r.get("per_class_recall", {}).get(label), 1))
    variant, v = shipped_variant(card)
    out.append("")
    what = (("flip-averaged logits" if words == "flip-averaged" else f"the logits of the {words}") if flips
            else "the single model's logits")
    ms_what = ("flip-averaged (each face and its mirror image in one batch)" if words == "flip-averaged"
               else f"for the {words}")
    out.append(f"Temperature T = {card.get('temperature')} (fitted on PublicTest, on {what}). Shipped file: "
               f"`{card.get('files', {}).get('tflite', {}).get('path')}` ({variant}), "
               f"{v.get('ms_per_face_batch1', float('nan')):.2f} ms per face through LiteRT at batch 1"
               + (f", {_ms(card, v):.2f} ms {ms_what}" if flips else "")
               + f". PrivateTest read {priv.get('date', '—')} by `{cmd(priv.get('command'))}`"
               + (f" and, for the predictor, by `{cmd((pred.get('private') or {}).get('command'))}`"
                  if flips else "") + ".")
    return "\n".join(out)


def exports(card: Card) -> str:
    """Each .tflite variant the export measured; the shipped one in bold."""
    e = card.get("export", {})
    variants = e.get("variants", {})
    flips = bool(variants) and all("public_accuracy_flip" in v for v in variants.values())
    head = ["variant", "PublicTest", "top-1 agreement with the trained model", "size", "ms per face"]
    out = _head(*head, *(["PublicTest, flip-averaged", "ms per face, flip-averaged"] if flips else []))
    for name, v in variants.items():
        shown = f"**{name} (shipped)**" if name == e.get("shipped") else name
        agree = v.get("top1_agreement_with_keras_on_public")
        cells = [shown, pct(v.get("public_accuracy")), pct(agree) if agree is not None else "—",
                 f"{v.get('bytes', 0) / 1e6:.1f} MB", f"{v.get('ms_per_face_batch1', float('nan')):.2f}"]
        if flips:
            cells += [pct(v["public_accuracy_flip"]), f"{v.get('ms_per_face_batch1_flip', float('nan')):.2f}"]
        out.append(_row(*cells))
    out.append("")
    made_by = cmd(card.get("metrics", {}).get("public", {}).get("command"))
    p = card.get("predictor") or {}
    rule, words = p.get("rule"), predictor_words(card)
    if "configurations" in p:
        so = ("so the service flip-averages" if words == "flip-averaged" else
              f"so the service runs the {words}" if words else "so the service runs the single model")
    else:
        so = f"so the service {'does' if words else 'does not'} flip-average"
    out.append(f"Rule: {e.get('shipped_rule', '—')}" + (f"; {rule}, {so}" if rule else "")
               + f". Measured by `{made_by}`; ms per face at batch 1, 2 threads, on the machine that exported it.")
    if "configurations" in p:
        out += ["", *predictors(card)]
    return "\n".join(out)


def _init_from(m: Card) -> str | None:
    """Where a member's run began (``--init-from``); older cards kept only its command."""
    tr = m.get("training") or {}
    if tr.get("init_from"):
        return str(tr["init_from"])
    words = str(tr.get("command") or "").split()
    return words[words.index("--init-from") + 1] if "--init-from" in words[:-1] else None


def member_origin(m: Card, short: bool = False) -> str:
    """A member's epoch, a fine-tune said as one: "epoch 3 of 5, fine-tuned from `RUN`" ("epoch 3 of a fine-tune")."""
    tr = m.get("training") or {}
    init, epoch = _init_from(m), tr.get("best_epoch", "—")
    if short:
        return f"epoch {epoch} of a fine-tune" if init else f"epoch {epoch}"
    return f"epoch {epoch} of {tr.get('epochs', '—')}" + (f", fine-tuned from `{init}`" if init else "")


def predictors(card: Card) -> list[str]:
    """Every way of running the shipped networks the export measured, the chosen one in bold."""
    p = card.get("predictor") or {}
    variant, _ = shipped_variant(card)
    out = _head(f"predictor ({variant} files)", "networks × looks per face", "PublicTest", "ms per face")
    for name, c in p.get("configurations", {}).items():
        shown = f"**{name} (shipped)**" if name == p.get("chosen") else name
        out.append(_row(shown, c.get("passes", "—"), pct(c.get("public_accuracy")),
                        f"{c.get('ms_per_face_batch1', float('nan')):.2f}"))
    for k, m in enumerate(members(card), 1):
        tr = m.get("training") or {}
        out.append("")
        out.append(f"Member {k}: `{(m.get('files') or {}).get('tflite', {}).get('path')}`, from `{m.get('run', '—')}` "
                   f"(seed {tr.get('seed', '—')}, {member_origin(m)}); "
                   f"alone, PublicTest {pct(m.get('public_accuracy'))} (its {variant} file).")
    return out


def crop(card: Card) -> str:
    """The runtime path (YuNet finds the face in a 640x480 frame, then crop) against FER's own crop."""
    c = card.get("crop_study", {})
    margin = c.get("chosen_margin")
    out = _head("split", "faces found by YuNet", "direct, on those faces", f"through the runtime path (margin {margin})")
    for split in ("public", "private"):
        s = c.get(split)
        if not s:
            continue
        through = s.get("by_margin", {}).get(str(margin))
        out.append(_row("PublicTest" if split == "public" else "PrivateTest", pct(s.get("detection_rate"), 1),
                        pct(s.get("direct_accuracy_detected")), pct(through)))
    out.append("")
    out.append(f"Margin chosen on {c.get('chosen_on', '—')}; the gap to the direct crop went "
               f"{c.get('gap_points_before', float('nan')):.2f} → {c.get('gap_points_after', float('nan')):.2f} points "
               f"on PrivateTest (`{cmd(c.get('command'))}`, {c.get('date', '—')}).")
    return "\n".join(out)


def robustness(card: Card) -> str:
    """Each changed condition, with the contrast steps and the model this one replaced."""
    r = card.get("robustness", {})
    before = _before(card)
    by = r.get("by_condition", {})
    steps = sorted({s for v in by.values() for s in v if s != "as is"}, key=["equalised", "CLAHE"].index)
    head = ["condition", f"**{card.get('name')}**", *[f"{card.get('name')}, {s}" for s in steps]]
    head += [_label(p, card) for p in before]
    out = _head(*head)
    for cond, v in by.items():
        cells = [cond, f"**{pct(v.get('as is'))}**", *[pct(v.get(s)) for s in steps]]
        cells += [pct(p.get("robustness_as_is", {}).get(cond)) for p in before]
        out.append(_row(*cells))
    real = r.get("realfaces96")
    if real:
        cells = ["real press photos (realfaces96, noisy labels)", f"**{pct(real['accuracy'])}**", *["" for _ in steps]]
        cells += [pct((p.get("realfaces96") or {}).get("accuracy")) for p in before]
        out.append(_row(*cells))
    out.append("")
    for angle, v in r.get("rolled_through_detector", {}).items():
        out.append(f"- Rolled {angle} in a 640x480 frame, found by YuNet ({pct(v['detected'], 1)} found): "
                   f"{pct(v['not levelled'])} not levelled, **{pct(v['eyes levelled'])}** with the eyes levelled.")
    if real:
        recall = ", ".join(f"{k} {pct(x, 1)}" for k, x in real.get("recall", {}).items())
        out.append(f"- Real photos: {real['n']} faces; recall {recall}.")
        rt = real.get("through_runtime") or {}
        if "accuracy" in rt:
            recall = ", ".join(f"{k} {pct(x, 1)}" for k, x in rt.get("recall", {}).items())
            out.append(f"- Real photos through the runtime (each in a 640x480 frame, found by YuNet "
                       f"({pct(rt['detected'], 1)} found), cropped at margin {rt['margin']:+.2f} with the eyes "
                       f"levelled): **{pct(rt['accuracy'])}**, against {pct(rt['resized_on_same'])} resized "
                       f"straight; recall {recall}.")
    through = f" through the shipped predictor ({predictor_words(card)})" if predictor_words(card) else ""
    out.append(f"- {r.get('split', 'PublicTest')}, {r.get('faces', '—')} faces, each changed one way at a "
               f"time{through}; `{cmd(r.get('command'))}`, {r.get('date', '—')}.")
    return "\n".join(out)


def thresholds(card: Card) -> str:
    """Each expression's enter threshold and what it buys on PublicTest."""
    t = card.get("thresholds", {})
    out = _head("expression", "enter", "cue precision", "faces of it cued")
    for label, c in t.get("per_class", {}).items():
        mark = "" if c.get("reached", True) else " (target not reached)"
        out.append(_row(label, f"{c['enter']:.2f}", pct(c["precision"], 1) + mark, pct(c["recall"], 1)))
    out.append("")
    out.append(f"Target precision {pct(t.get('target_precision'), 0)} on {t.get('chosen_on', '—')}; "
               f"`{cmd(t.get('command'))}`, {t.get('date', '—')}.")
    return "\n".join(out)


def taught_by(card: Card) -> str:
    """", taught by A and B (--distill W)" for a student (``training.train --teacher``); "" otherwise."""
    t = (card.get("training") or {}).get("teachers") or {}
    names = [Path(str(spec).removesuffix(":last")).name + (" (its last average)" if str(spec).endswith(":last")
                                                              else "") for spec in t.get("specs") or []]
    if not names:
        return ""
    who = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f", taught by {who} (`--distill {card['training'].get('distill')}`)"


def summary(card: Card) -> str:
    """The headline numbers, for the README."""
    priv = card.get("metrics", {}).get("private", {})
    recall = priv.get("per_class_recall", {})
    real = card.get("robustness", {}).get("realfaces96") or {}
    variant, v = shipped_variant(card)
    before = _before(card)
    head = ["", f"**{card.get('name')}** (shipped)", *[_label(p, card) for p in before]]
    out = _head(*head)

    def line(what: str, now: str, then: Callable[[dict[str, Any]], str]) -> None:
        out.append(_row(what, now, *[then(p) for p in before]))

    def pp(p: dict[str, Any]) -> dict[str, Any]:
        return p.get("private") or {}

    line("PrivateTest accuracy (single model, no TTA)", f"**{pct(priv.get('accuracy'))}**",
         lambda p: pct(pp(p).get("accuracy")))
    words = predictor_words(card)
    if words:
        ours = ((card.get("metrics", {}).get("predictor") or {}).get("private") or {}).get("accuracy")
        # A predecessor that ran one network, one look, ran as its single model.
        line(f"PrivateTest accuracy of the shipped predictor ({words})", f"**{pct(ours)}**",
             lambda p: pct(p.get("predictor_private_accuracy") if p.get("flip_average") or p.get("predictor")
                           else pp(p).get("accuracy")))
    shown = f"{variant}, {words}" if words else variant
    line(f"PublicTest accuracy of what runs ({shown})", pct(shipped_public_accuracy(card)),
         lambda p: pct(p.get("public_accuracy")))
    line("PrivateTest macro-F1", pct(priv.get("macro_f1")), lambda p: pct(pp(p).get("macro_f1")))
    line("FER+ majority label, PrivateTest", pct(priv.get("ferplus_majority_accuracy")),
         lambda p: pct(pp(p).get("ferplus_majority_accuracy")))
    line("recall fear / sad, PrivateTest", f"{pct(recall.get('fear'), 1)} / {pct(recall.get('sad'), 1)}",
         lambda p: f"{pct(pp(p).get('per_class_recall', {}).get('fear'), 1)} / "
                   f"{pct(pp(p).get('per_class_recall', {}).get('sad'), 1)}")
    line("real press photos (realfaces96)", pct(real.get("accuracy")),
         lambda p: pct((p.get("realfaces96") or {}).get("accuracy")))
    params = card.get("training", {}).get("arch", "—")
    epoch = card.get("training", {}).get("best_epoch", "—")
    out.append("")
    flip = (", each face averaged with its mirror image" if words == "flip-averaged"
            else f", {words}" if words else "")
    more = members(card)
    seeds = "other seeds" if len(more) > 1 else "another seed"
    also = (f" and {len(more)} more network{'s' if len(more) > 1 else ''} of the same recipe from {seeds} "
            f"({'; '.join(member_origin(m, short=True) for m in more)})" if more else "")
    size = (v.get("bytes", 0) + sum((m.get("files") or {}).get("tflite", {}).get("bytes", 0) for m in more)) / 1e6
    taught = taught_by(card)
    out.append(f"Network `{params}`, epoch {epoch}{taught}{also}; shipped as {variant} `.tflite`, {size:.1f} MB, "
               f"{_ms(card, v):.2f} ms per face (LiteRT, batch 1, 2 threads{flip}). "
               "Everything else: [`models/MODEL_CARD.md`](models/MODEL_CARD.md).")
    return "\n".join(out)


def curve(card: Card) -> str:
    """PublicTest after every epoch, the shipped one in bold: the curve the ship was chosen from."""
    tr = card.get("training", {})
    c = tr.get("curve") or {}
    acc = c.get("public_accuracy") or []
    if not acc:
        return "(This card was exported before cards kept the per-epoch curve.)"
    cells = [f"{100 * a:.1f}" for a in acc]
    first = int(c.get("first_epoch", 1))
    best = tr.get("best_epoch")
    later = tr.get("run_after_ship") or {}  # the run went on after the ship (training.export --curve-only)
    run_best = later.get("best_epoch")
    if isinstance(run_best, int) and run_best != best and 0 <= run_best - first < len(cells):
        cells[run_best - first] = f"{cells[run_best - first]} (epoch {run_best}, the run's best; did not ship)"
    if isinstance(best, int) and 0 <= best - first < len(cells):
        cells[best - first] = f"**{cells[best - first]}** (epoch {best}, shipped)"
    what = "the weight average, which is what is evaluated and shipped" if tr.get("ema") else "the trained network"
    since = "each epoch" if first == 1 else f"each epoch from epoch {first}"
    text = (f"PublicTest accuracy after {since} ({what}; every epoch in `models/{card.get('name')}_history.csv`): "
            + ", ".join(cells) + "%.")
    if "lr_fraction_of_peak" in c:
        text += (f" After epoch {first + len(acc) - 1} the learning rate was {100 * c['lr_fraction_of_peak']:.0f}% "
                 "of its peak"
                 + ("." if later.get("finished", tr.get("finished")) else "; the run keeps training."))
    return text


def schedules(card: Card) -> str:
    """Every full schedule of the shipped recipe (``training.schedules``): whether training has plateaued."""
    rows = list(card.get("schedules") or [])
    if not rows:
        return "(No schedule recorded yet: `python -m training.schedules --run <run folder>`.)"
    tr = card.get("training") or {}
    shipped_seed = tr.get("seed")
    member_seeds = {(m.get("training") or {}).get("seed") for m in members(card)}
    out = [_row("seed", "epochs done (of its schedule)", "best PublicTest (epoch)",
                f"PublicTest over its last {LAST} epochs", f"gain of its last {LAST} epochs over the best before them",
                "learning rate after its last epoch", "in the shipped predictor"),
           _row(*["---"] + ["---:"] * 5 + ["---"])]
    curves = []
    for s in rows:
        acc = s.get("public_accuracy") or []
        p = plateau(acc)
        lr = s.get("lr_fraction_of_peak")
        role = ("the shipped network's schedule (then fine-tuned)" if s.get("seed") == shipped_seed
                else "an ensemble member" if s.get("seed") in member_seeds
                else "no: still training" if not s.get("finished") else "no")
        out.append(_row(
            s.get("seed"), f"{s.get('epochs')} ({s.get('schedule_epochs')})"
            + ("" if s.get("finished") else ", training"),
            f"{pct(s.get('best_public_accuracy'))} ({s.get('best_epoch')})",
            "—" if p is None else f"{100 * p['low']:.1f}-{100 * p['high']:.1f}%",
            "—" if p is None else f"{100 * p['gain']:+.2f} points",
            "0: the schedule ended" if s.get("finished") else "—" if lr is None else f"{100 * lr:.0f}% of its peak",
            role))
        if s.get("seed") != shipped_seed and acc:
            curves.append(f"Seed {s.get('seed')}, PublicTest after each epoch: "
                          + ", ".join(f"{100 * a:.1f}" for a in acc) + "%.")
    dates = sorted({s.get("recorded") for s in rows if s.get("recorded")})
    note = (f"Recorded {', '.join(dates)} by `python -m training.schedules --run <run folder>` from each run's "
            "logs; the curves together: [`schedules.png`](schedules.png)."
            + (" The shipped network's own curve is above." if shipped_seed in {s.get("seed") for s in rows} else ""))
    return "\n".join([*out, "", *curves, *([""] if curves else []), note])


def calibration(card: Card) -> str:
    """Temperature and the runtime crop's gap in one sentence each, for the README's prose."""
    m = card.get("metrics", {})
    # The temperature is fitted to what runs, so it is judged on what runs.
    words = predictor_words(card)
    priv = ((m.get("predictor") or {}).get("private") if words else None) or m.get("private", {})
    whose = (f"the shipped predictor's ({words}) PrivateTest" if words and priv is not m.get("private")
             else "PrivateTest's")
    c = card.get("crop_study", {})
    found = (c.get("private") or {}).get("detection_rate")
    return (f"T = {card.get('temperature', float('nan')):.3f} takes {whose} expected calibration error from "
            f"{pct(priv.get('ece_uncalibrated'), 1)} to {pct(priv.get('ece'), 1)}. Through YuNet and the runtime's "
            f"crop, the gap to FER's own crop on PrivateTest is {c.get('gap_points_after', float('nan')):.2f} points "
            f"at the margin chosen on PublicTest ({c.get('chosen_margin')}; "
            f"{c.get('gap_points_before', float('nan')):.2f} at the export's default "
            f"{c.get('previous_margin')}); YuNet finds {pct(found, 1)} of the placed faces.")


TABLES: dict[str, Callable[[Card], str]] = {
    "results": results, "exports": exports, "crop": crop, "robustness": robustness,
    "thresholds": thresholds, "summary": summary, "curve": curve, "calibration": calibration,
    "schedules": schedules,
}
_BLOCK = re.compile(r"(<!-- card:(?P<name>[a-z]+) -->\n)(?P<body>.*?)(<!-- /card:(?P=name) -->)", re.S)


class PageError(ValueError):
    """A page's markers are wrong: named with the file and line."""


def render_page(text: str, card: Card, where: str = "page") -> str:
    """``text`` with every marked block made anew from ``card``."""
    opened = [(m.group(1), text.count("\n", 0, m.start()) + 1) for m in re.finditer(r"<!-- card:([a-z]+) -->", text)]
    closed = set(re.findall(r"<!-- /card:([a-z]+) -->", text))
    for name, line in opened:
        if name not in TABLES:
            raise PageError(f"{where}:{line}: unknown card table {name!r} (known: {', '.join(TABLES)})")
        if name not in closed:
            raise PageError(f"{where}:{line}: <!-- card:{name} --> has no <!-- /card:{name} -->")
    return _BLOCK.sub(lambda m: m.group(1) + TABLES[m.group("name")](card) + "\n" + m.group(4), text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pages", type=Path, nargs="+")
    ap.add_argument("--card", type=Path, default=Path("models/card.json"))
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--update", action="store_true", help="rewrite the marked tables in place")
    mode.add_argument("--check", action="store_true", help="exit 1 when a page's tables differ from the card")
    args = ap.parse_args(argv)
    card = read_card(args.card)
    stale = []
    for page in args.pages:
        text = page.read_text()
        try:
            new = render_page(text, card, str(page))
        except PageError as e:
            print(f"card_tables: {e}", file=sys.stderr)
            return 2
        if new != text:
            stale.append(page)
            if args.update:
                page.write_text(new)
    verb = "updated" if args.update else "stale (run --update)"
    for page in stale:
        print(f"card_tables: {page}: {verb} from {args.card}", file=sys.stderr if args.check else sys.stdout)
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
