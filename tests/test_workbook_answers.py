"""The "check your answer" helper: right answers pass, wrong ones fail, nothing is revealed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nepse_perf.lessons.workbook import answer_digest, check_answer


@pytest.mark.parametrize(
    ("answer", "same", "different"),
    [
        (12, 12, 13),
        (0.7307123, 0.73071234, 0.7308),
        (["wilder_recurrence", "ema_recurrence"], ["wilder_recurrence", "ema_recurrence"],
         ["ema_recurrence", "wilder_recurrence"]),
        ({"b": 2, "a": 1.0}, {"a": 1.0, "b": 2}, {"a": 1.0, "b": 3}),
        (np.array([1.0, np.nan, 3.0]), np.array([1.0, np.nan, 3.0000000001]), np.array([1.0, 2.0, 3.0])),
        (pd.Series([1.5, 2.5], index=["x", "y"]), pd.Series([1.5, 2.5], index=["x", "y"]),
         pd.Series([1.5, 2.5], index=["x", "z"])),
        (pd.Timestamp("2017-09-12"), pd.Timestamp("2017-09-12"), pd.Timestamp("2017-09-13")),
    ],
)  # fmt: skip
def test_digest_accepts_equal_and_rejects_different(answer, same, different, capsys) -> None:
    digest = answer_digest(answer)
    assert check_answer(same, digest) is True
    assert capsys.readouterr().out.startswith("correct")
    assert check_answer(different, digest) is False
    out = capsys.readouterr().out
    assert out.startswith("not yet") and str(different) not in out and str(answer) not in out


def test_shape_matters_and_digits_are_respected(capsys) -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0]})
    assert not check_answer(frame.T, answer_digest(frame))
    assert "shape (1, 2)" in capsys.readouterr().out
    assert check_answer(1.004, answer_digest(1.0, digits=2), digits=2)
    assert not check_answer(1.004, answer_digest(1.0))


def test_digest_is_short_hex_and_stable() -> None:
    digest = answer_digest([1, 2.5, "x"])
    assert len(digest) == 16 and set(digest) <= set("0123456789abcdef")
    assert digest == answer_digest((1, 2.5, "x"))
