"""The model card's tables: made from card.json alone, and the committed pages match the committed card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from training import card_tables
from training.card import summary

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "models" / "MODEL_CARD.md", ROOT / "README.md"]

CARD = {
    "name": "fer_new",
    "labels": ["angry", "sad"],
    "temperature": 0.9,
    "files": {"tflite": {"path": "fer_new.tflite", "sha256": "b"}},
    "training": {"arch": "resnet18h"},
    "metrics": {
        "public": {"accuracy": 0.661, "macro_f1": 0.6, "per_class_recall": {"angry": 0.7, "sad": 0.5},
                   "command": "python -m training.export --run r --note a long story"},
        "private": {"accuracy": 0.6789, "macro_f1": 0.65, "ferplus_majority_accuracy": 0.71,
                    "per_class_recall": {"angry": 0.72, "sad": 0.55}, "date": "2026-12-01", "command": "python -m x"},
    },
    "export": {"shipped": "int8", "shipped_rule": "auto",
               "variants": {"float32": {"public_accuracy": 0.661, "bytes": 11_000_000, "ms_per_face_batch1": 3.1},
                            "int8": {"public_accuracy": 0.659, "bytes": 2_800_000, "ms_per_face_batch1": 0.96,
                                     "top1_agreement_with_keras_on_public": 0.98}}},
    "robustness": {"by_condition": {"clean": {"as is": 0.661, "CLAHE": 0.65, "equalised": 0.64},
                                    "dark (gamma 3)": {"as is": 0.64, "CLAHE": 0.63, "equalised": 0.62}},
                   "realfaces96": {"n": 10, "accuracy": 0.7, "recall": {"sad": 0.5},
                                   "through_runtime": {"detected": 0.9, "margin": -0.05, "accuracy": 0.66,
                                                       "resized_on_same": 0.71, "recall": {"sad": 0.4}}}},
    "predecessors": [{"name": "fer_old", "public_accuracy": 0.647,
                      "private": {"accuracy": 0.6587, "per_class_recall": {"sad": 0.473}},
                      "robustness_as_is": {"clean": 0.647, "dark (gamma 3)": 0.6007},
                      "realfaces96": {"accuracy": 0.5837}}],
}


def test_tables_show_the_card_numbers_with_before_and_after() -> None:
    rob = card_tables.robustness(CARD)
    assert rob.splitlines()[0] == ("| condition | **fer_new** | fer_new, equalised | fer_new, CLAHE | "
                                   "fer_old (before) |")
    assert "| dark (gamma 3) | **64.00%** | 62.00% | 63.00% | 60.07% |" in rob
    assert "| real press photos (realfaces96, noisy labels) | **70.00%** |  |  | 58.37% |" in rob
    assert ("found by YuNet (90.0% found), cropped at margin -0.05 with the eyes levelled): **66.00%**, "
            "against 71.00% resized straight; recall sad 40.0%.") in rob
    summ = card_tables.summary(CARD)
    assert "| PrivateTest accuracy (single model, no TTA) | **67.89%** | 65.87% |" in summ
    assert "| recall fear / sad, PrivateTest | — / 55.0% | — / 47.3% |" in summ
    assert "int8 `.tflite`, 2.8 MB, 0.96 ms" in summ
    ex = card_tables.exports(CARD)
    assert "| **int8 (shipped)** | 65.90% | 98.00% | 2.8 MB | 0.96 |" in ex
    assert "a long story" not in ex  # the note stays in the card
    assert "| recall: sad | 50.0% | 55.0% |" in card_tables.results(CARD)


def test_render_replaces_only_between_markers() -> None:
    page = "# Card\nkeep me\n<!-- card:thresholds -->\nold table\n<!-- /card:thresholds -->\nand me\n"
    card = {"thresholds": {"per_class": {"sad": {"enter": 0.59, "precision": 0.702, "recall": 0.162}},
                           "target_precision": 0.7, "chosen_on": "PublicTest"}}
    out = card_tables.render_page(page, card)
    assert out.startswith("# Card\nkeep me\n<!-- card:thresholds -->\n| expression |")
    assert "| sad | 0.59 | 70.2% | 16.2% |" in out and "old table" not in out
    assert out.endswith("<!-- /card:thresholds -->\nand me\n")
    assert card_tables.render_page(out, card) == out


@pytest.mark.parametrize(("page", "message"), [
    ("a\n<!-- card:thresholds -->\nx\n", "p.md:2: <!-- card:thresholds --> has no <!-- /card:thresholds -->"),
    ("<!-- card:nonsense -->\n<!-- /card:nonsense -->\n", "p.md:1: unknown card table 'nonsense'"),
])
def test_bad_markers_are_named_with_file_and_line(page: str, message: str) -> None:
    with pytest.raises(card_tables.PageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        card_tables.render_page(page, {}, "p.md")


def test_check_fails_on_a_stale_page_and_update_mends_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    card = tmp_path / "card.json"
    card.write_text(json.dumps(CARD))
    page = tmp_path / "p.md"
    page.write_text("<!-- card:summary -->\nstale\n<!-- /card:summary -->\n")
    assert card_tables.main([str(page), "--card", str(card), "--check"]) == 1
    assert "p.md: stale" in capsys.readouterr().err
    assert card_tables.main([str(page), "--card", str(card), "--update"]) == 0
    assert card_tables.main([str(page), "--card", str(card), "--check"]) == 0
    assert "**67.89%**" in page.read_text()


def test_committed_pages_match_the_committed_card() -> None:
    card = json.loads((ROOT / "models" / "card.json").read_text())
    marked = [p for p in PAGES if "<!-- card:" in p.read_text()]
    assert ROOT / "models" / "MODEL_CARD.md" in marked
    for page in marked:
        assert card_tables.render_page(page.read_text(), card, str(page)) == page.read_text(), (
            f"{page.name} is stale: python -m training.card_tables --update models/MODEL_CARD.md README.md")


def test_summary_keeps_what_before_and_after_need() -> None:
    s = summary({**CARD, "files": {"tflite": {"sha256": "b"}}})
    # what ran: the shipped int8 file's PublicTest accuracy, not the float network's 0.661
    assert s["name"] == "fer_new" and s["public_accuracy"] == 0.659 and s["tflite_sha256"] == "b"
    assert s["private"]["accuracy"] == 0.6789
    assert s["robustness_as_is"] == {"clean": 0.661, "dark (gamma 3)": 0.64}
    assert summary({"name": "x"})["private"] is None


def test_an_earlier_epoch_of_the_same_model_is_named_by_its_epoch() -> None:
    older = {**CARD["predecessors"][0], "name": "fer_new", "best_epoch": 32}
    card = {**CARD, "training": {"arch": "resnet18h", "best_epoch": 41},
            "predecessors": [older, *CARD["predecessors"]]}
    head = card_tables.summary(card).splitlines()[0]
    assert head == "|  | **fer_new** (shipped) | fer_new, epoch 32 (before) | fer_old (before) |"
    assert "epoch 41; shipped as int8" in card_tables.summary(card)


def test_the_same_network_shipped_before_is_named_by_how_it_ran() -> None:
    """A member joining leaves the network's epoch as it was: the column says what ran then."""
    flip = {**CARD["predecessors"][0], "name": "fer_new", "best_epoch": 41, "predictor": "flip-averaged"}
    card = {**CARD, "training": {"arch": "resnet18h", "best_epoch": 41},
            "predecessors": [flip, *CARD["predecessors"]]}
    head = card_tables.summary(card).splitlines()[0]
    assert head == "|  | **fer_new** (shipped) | fer_new, epoch 41, flip-averaged (before) | fer_old (before) |"
    card["predecessors"] = [{**flip, "predictor": ""}, *CARD["predecessors"]]
    assert "| fer_new, epoch 41, one look (before) |" in card_tables.summary(card).splitlines()[0]


def test_after_several_epochs_the_other_network_keeps_its_column() -> None:
    """Epochs 46, 41, 32 of one run: the table compares with 41 and with the network before the run."""
    e41 = {**CARD["predecessors"][0], "name": "fer_new", "best_epoch": 41}
    e32 = {**CARD["predecessors"][0], "name": "fer_new", "best_epoch": 32}
    card = {**CARD, "training": {"arch": "resnet18h", "best_epoch": 46},
            "predecessors": [e41, e32, *CARD["predecessors"]]}
    head = card_tables.summary(card).splitlines()[0]
    assert head == "|  | **fer_new** (shipped) | fer_new, epoch 41 (before) | fer_old (before) |"
    # with no other network among them, the two newest
    card["predecessors"] = [e41, e32, {**e32, "best_epoch": 28}]
    head = card_tables.summary(card).splitlines()[0]
    assert head == "|  | **fer_new** (shipped) | fer_new, epoch 41 (before) | fer_new, epoch 32 (before) |"


def test_the_curve_is_every_epoch_with_the_shipped_one_in_bold(tmp_path) -> None:
    from training.export import public_curve

    run = tmp_path / "history.csv"
    run.write_text("epoch,val_accuracy,lr\n0,0.30,0.05\n1,0.52,0.05\n2,0.6687,0.04\n3,0.6601,0.035\n")
    h = np.atleast_1d(np.genfromtxt(run, delimiter=",", names=True))
    c = public_curve(h, run, 0.05)
    assert c == {"public_accuracy": [0.3, 0.52, 0.6687, 0.6601], "first_epoch": 1, "lr_fraction_of_peak": 0.7}
    card = {**CARD, "training": {"best_epoch": 3, "ema": 0.999, "finished": False, "curve": c}}
    assert card_tables.curve(card) == (
        "PublicTest accuracy after each epoch (the weight average, which is what is evaluated and shipped; "
        "every epoch in `models/fer_new_history.csv`): 30.0, 52.0, **66.9** (epoch 3, shipped), 66.0%. "
        "After epoch 4 the learning rate was 70% of its peak; the run keeps training.")
    assert card_tables.curve(CARD) == "(This card was exported before cards kept the per-epoch curve.)"

    # a run that went on from epoch 46 (training.train --start-epoch) numbers its curve from 47
    later = {**card, "training": {**card["training"], "best_epoch": 48,
                                  "curve": {"public_accuracy": [0.66, 0.67], "first_epoch": 47}}}
    assert ("after each epoch from epoch 47 (the weight average, which is what is evaluated and shipped; "
            "every epoch in `models/fer_new_history.csv`): 66.0, **67.0** (epoch 48, shipped)%.") in card_tables.curve(later)


def test_the_calibration_sentence_is_the_cards_temperature_ece_and_crop_gap() -> None:
    card = {**CARD,
            "metrics": {**CARD["metrics"],  # type: ignore[dict-item]
                        "private": {**CARD["metrics"]["private"], "ece": 0.0263, "ece_uncalibrated": 0.0441}},  # type: ignore[index]
            "crop_study": {"chosen_margin": -0.05, "previous_margin": 0.1, "gap_points_before": 4.09,
                           "gap_points_after": 0.6, "private": {"detection_rate": 0.885}}}
    assert card_tables.calibration(card) == (
        "T = 0.900 takes PrivateTest's expected calibration error from 4.4% to 2.6%. Through YuNet and the "
        "runtime's crop, the gap to FER's own crop on PrivateTest is 0.60 points at the margin chosen on "
        "PublicTest (-0.05; 4.09 at the export's default 0.1); YuNet finds 88.5% of the placed faces.")


FLIP_CARD = {
    **CARD,
    "predictor": {"flip_average": True, "rule": "--flip auto: when it wins"},
    "metrics": {**CARD["metrics"],  # type: ignore[dict-item]
                "predictor": {"public": {"accuracy": 0.672, "per_class_recall": {"angry": 0.71, "sad": 0.52}},
                              "private": {"accuracy": 0.6901, "per_class_recall": {"angry": 0.73, "sad": 0.58},
                                          "command": "python -m training.evaluate --predictor"}}},
    "export": {**CARD["export"],  # type: ignore[dict-item]
               "variants": {"float32": {"public_accuracy": 0.661, "public_accuracy_flip": 0.668,
                                        "bytes": 11_000_000, "ms_per_face_batch1": 3.1,
                                        "ms_per_face_batch1_flip": 5.9},
                            "int8": {"public_accuracy": 0.659, "public_accuracy_flip": 0.672, "bytes": 2_800_000,
                                     "ms_per_face_batch1": 0.96, "ms_per_face_batch1_flip": 1.41,
                                     "top1_agreement_with_keras_on_public": 0.98}}},
}


def test_a_flip_averaged_predictor_is_shown_beside_the_single_model() -> None:
    from training.card import shipped_public_accuracy

    assert shipped_public_accuracy(FLIP_CARD) == 0.672  # what runs is the flip-averaged int8 file
    assert shipped_public_accuracy(CARD) == 0.659
    res = card_tables.results(FLIP_CARD)
    assert res.splitlines()[0] == (
        "| measure | PublicTest, single model (the trained network; chose the epoch) | PrivateTest, single model "
        "(the shipped file, no test-time augmentation) | PublicTest, shipped predictor (the file, flip-averaged) | "
        "PrivateTest, shipped predictor (flip-averaged) |")
    assert "| accuracy | 66.10% | **67.89%** | 67.20% | **69.01%** |" in res
    assert "| recall: sad | 50.0% | 55.0% | 52.0% | 58.0% |" in res
    assert "0.96 ms per face through LiteRT at batch 1, 1.41 ms flip-averaged" in res
    assert "by `python -m training.evaluate --predictor`" in res
    summ = card_tables.summary(FLIP_CARD)
    assert "| PrivateTest accuracy (single model, no TTA) | **67.89%** | 65.87% |" in summ
    # fer_old did not flip-average: its predictor was its single model.
    assert "| PrivateTest accuracy of the shipped predictor (flip-averaged) | **69.01%** | 65.87% |" in summ
    assert "| PublicTest accuracy of what runs (int8, flip-averaged) | 67.20% | 64.70% |" in summ
    assert "1.41 ms per face (LiteRT, batch 1, 2 threads, each face averaged with its mirror image)" in summ
    ex = card_tables.exports(FLIP_CARD)
    assert "| **int8 (shipped)** | 65.90% | 98.00% | 2.8 MB | 0.96 | 67.20% | 1.41 |" in ex
    assert "--flip auto: when it wins, so the service does flip-average" in ex
    assert "through the shipped predictor (flip-averaged)" in card_tables.robustness(FLIP_CARD)
    assert "flip-averaged" not in card_tables.results(CARD) + card_tables.summary(CARD) + card_tables.exports(CARD)
    s = summary(FLIP_CARD)
    assert s["flip_average"] is True and s["predictor_private_accuracy"] == 0.6901


ENSEMBLE_CARD = {
    **FLIP_CARD,
    "predictor": {
        "flip_average": True, "split_views": True, "chosen": "split", "rule": "--predictor auto: the best",
        "members": [{"run": "/runs/seed2", "public_accuracy": 0.664,
                     "files": {"tflite": {"path": "fer_new_m1.tflite", "sha256": "c", "bytes": 2_900_000}},
                     "training": {"seed": 2, "best_epoch": 117, "epochs": 120}}],
        "configurations": {"single": {"public_accuracy": 0.659, "ms_per_face_batch1": 0.96, "passes": 1},
                           "flip": {"public_accuracy": 0.672, "ms_per_face_batch1": 1.41, "passes": 2},
                           "split": {"public_accuracy": 0.681, "ms_per_face_batch1": 1.93, "passes": 2},
                           "ensemble-flip": {"public_accuracy": 0.684, "ms_per_face_batch1": 3.52, "passes": 4}},
    },
}


def test_an_ensemble_is_named_and_measured_as_what_runs() -> None:
    from training.card import predictor_words, shipped_ms, shipped_public_accuracy

    assert predictor_words(ENSEMBLE_CARD) == "ensemble of 2, face and mirror image split between them"
    assert predictor_words(CARD) == "" and predictor_words(FLIP_CARD) == "flip-averaged"
    assert shipped_public_accuracy(ENSEMBLE_CARD) == 0.681 and shipped_ms(ENSEMBLE_CARD) == 1.93
    res = card_tables.results(ENSEMBLE_CARD)
    assert ("| PublicTest, shipped predictor (the files, ensemble of 2, face and mirror image split between them) "
            "| PrivateTest, shipped predictor (ensemble of 2, face and mirror image split between them) |") in res
    assert "on the logits of the ensemble of 2, face and mirror image split between them)" in res
    assert "1.93 ms for the ensemble of 2" in res
    summ = card_tables.summary(ENSEMBLE_CARD)
    assert "| PublicTest accuracy of what runs (int8, ensemble of 2, face and mirror image split" in summ
    assert "| 68.10% | 64.70% |" in summ
    assert ("epoch — and 1 more network of the same recipe from another seed (epoch 117); shipped as int8 "
            "`.tflite`, 5.7 MB, 1.93 ms per face") in summ
    ex = card_tables.exports(ENSEMBLE_CARD)
    assert "--predictor auto: the best, so the service runs the ensemble of 2" in ex
    assert "| **split (shipped)** | 2 | 68.10% | 1.93 |" in ex
    assert "| ensemble-flip | 4 | 68.40% | 3.52 |" in ex
    assert "Member 1: `fer_new_m1.tflite`, from `/runs/seed2` (seed 2, epoch 117 of 120); alone, PublicTest 66.40%" in ex
    assert "through the shipped predictor (ensemble of 2, face" in card_tables.robustness(ENSEMBLE_CARD)
    # Its successor shows the ensemble's PrivateTest as the predictor's number.
    s = summary(ENSEMBLE_CARD)
    assert s["predictor"] == predictor_words(ENSEMBLE_CARD) and s["predictor_private_accuracy"] == 0.6901


def test_a_fine_tuned_member_says_where_it_began() -> None:
    """A member fine-tuned from a schedule's best epoch is not "epoch 3" of that schedule."""
    ft = {**ENSEMBLE_CARD["predictor"]["members"][0],  # type: ignore[index]
          "training": {"seed": 2, "best_epoch": 3, "epochs": 5,
                       "command": "python -m training.train --seed 2 --init-from /runs/seed2/best.keras --epochs 5"}}
    card = {**ENSEMBLE_CARD, "predictor": {**ENSEMBLE_CARD["predictor"], "members": [ft]}}  # type: ignore[dict-item]
    assert ("Member 1: `fer_new_m1.tflite`, from `/runs/seed2` (seed 2, epoch 3 of 5, fine-tuned from "
            "`/runs/seed2/best.keras`); alone") in card_tables.exports(card)
    assert "from another seed (epoch 3 of a fine-tune); shipped as int8" in card_tables.summary(card)
    # The field the export now keeps wins over the command; no --init-from, no words.
    ft["training"] = {**ft["training"], "init_from": "/runs/other.keras"}
    assert "fine-tuned from `/runs/other.keras`" in card_tables.exports(card)
    ft["training"] = {"seed": 2, "best_epoch": 117, "epochs": 120, "command": "python -m training.train --seed 2"}
    assert "(seed 2, epoch 117 of 120); alone" in card_tables.exports(card)


def test_calibration_is_judged_on_the_predictor_the_temperature_was_fitted_to() -> None:
    card = {**FLIP_CARD, "crop_study": {"chosen_margin": -0.05}, "temperature": 0.918,
            "metrics": {**FLIP_CARD["metrics"],  # type: ignore[dict-item]
                        "predictor": {"private": {"ece": 0.0351, "ece_uncalibrated": 0.0386}}}}
    assert card_tables.calibration(card).startswith(
        "T = 0.918 takes the shipped predictor's (flip-averaged) PrivateTest expected calibration error from "
        "3.9% to 3.5%.")
    # With the configurations measured, the rule says what runs in words.
    card["predictor"] = {**card["predictor"], "chosen": "flip",  # type: ignore[dict-item]
                         "configurations": {"single": {"public_accuracy": 0.659, "ms_per_face_batch1": 0.96,
                                                       "passes": 1},
                                            "flip": {"public_accuracy": 0.672, "ms_per_face_batch1": 1.41,
                                                     "passes": 2}}}
    assert "when it wins, so the service flip-averages." in card_tables.exports(card)


def test_a_student_names_its_teachers_in_the_summary() -> None:
    student = {**CARD, "training": {"arch": "resnet18h", "best_epoch": 130, "distill": 0.5,
                                    "teachers": {"specs": ["models/fer_resnet18h.keras", "/runs/resnet18h_s2_ft",
                                                           "/runs/resnet18h_s3:last"]}}}
    assert ("Network `resnet18h`, epoch 130, taught by fer_resnet18h.keras, resnet18h_s2_ft and resnet18h_s3 "
            "(its last average) (`--distill 0.5`); shipped as int8") in card_tables.summary(student)
    assert "taught by" not in card_tables.summary(CARD)
