"""What the three fuzz suites share: their Hypothesis settings and the per-module case counter."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

EXAMPLES = int(os.environ.get("FER_AUDIO_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def case_report(cases: Counter[str], test_file: str) -> Callable[[], Iterator[None]]:
    """An autouse module fixture that prints ``cases`` at the end and writes them to
    $FER_AUDIO_FUZZ_COUNTS/<module>.json when that variable names a folder.

    Assign it to a module-level name in the test module so pytest collects it.
    """

    @pytest.fixture(scope="module", autouse=True)
    def report_counts() -> Iterator[None]:
        yield
        name = Path(test_file)
        print(f"\n{name.name}: cases tried: " + ", ".join(f"{k} {v}" for k, v in sorted(cases.items())))
        out = os.environ.get("FER_AUDIO_FUZZ_COUNTS")
        if out:
            Path(out).mkdir(parents=True, exist_ok=True)
            (Path(out) / f"{name.stem}.json").write_text(json.dumps(dict(cases), indent=2) + "\n")

    return report_counts
