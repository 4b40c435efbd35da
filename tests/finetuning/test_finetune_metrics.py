"""Accuracy and macro-F1 in numpy, checked against hand-computed answers."""

from __future__ import annotations

import numpy as np
import pytest

from rlagent.finetuning import accuracy, macro_f1


def test_known_answers():
    true = ["a", "a", "b", "b", "c"]
    pred = ["a", "b", "b", "b", "a"]
    # a: tp1 fp1 fn1 -> 0.5; b: tp2 fp1 fn0 -> 0.8; c: tp0 fp0 fn1 -> 0
    assert accuracy(true, pred) == pytest.approx(0.6)
    assert macro_f1(true, pred) == pytest.approx((0.5 + 0.8 + 0.0) / 3)


def test_a_label_only_predicted_counts_with_f1_zero():
    assert macro_f1([0, 0, 1, 1], [0, 0, 1, 2]) == pytest.approx((1 + 2 / 3 + 0) / 3)


def test_perfect_and_empty():
    labels = np.array([3, 1, 2, 1])
    assert accuracy(labels, labels) == 1.0 and macro_f1(labels, labels) == 1.0
    assert accuracy([], []) == 0.0 and macro_f1([], []) == 0.0
