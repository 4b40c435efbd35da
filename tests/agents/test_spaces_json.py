"""Gymnasium spaces written as JSON and read back equal."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from gymnasium import spaces

from rlagent.agents.spaces_json import SpaceFormatError, space_from_json, space_to_json

SPACES = [
    spaces.Box(0, 338, (6, 64), np.int64),
    spaces.Box(-np.inf, np.inf, (3,), np.float32),
    spaces.Box(np.array([0.0, -1.0], np.float32), np.array([1.0, 2.5], np.float32)),
    spaces.Discrete(14),
    spaces.Discrete(3, start=-1),
    spaces.MultiDiscrete([10, 10]),
    spaces.MultiBinary(4),
    spaces.Text(60, min_length=0, charset="abc "),
    spaces.Dict(
        {
            "text": spaces.Text(20),
            "items": spaces.Tuple([spaces.Text(8)] * 2),
            "features": spaces.Box(0.0, 1.0, (4,), np.float32),
        }
    ),
]


@pytest.mark.parametrize("space", SPACES, ids=lambda s: type(s).__name__)
def test_a_space_survives_a_json_round_trip(space):
    data = json.loads(json.dumps(space_to_json(space), allow_nan=False))
    assert space_from_json(data) == space


def test_uniform_bounds_are_written_as_one_number():
    data = space_to_json(spaces.Box(-np.inf, 1.0, (2, 2), np.float32))
    assert (data["low"], data["high"]) == ("-inf", 1.0)
    assert space_to_json(SPACES[2])["high"] == [1.0, 2.5]


def test_an_unsupported_space_is_refused():
    with pytest.raises(SpaceFormatError, match=re.escape("Cannot describe a Sequence space")):
        space_to_json(spaces.Sequence(spaces.Discrete(2)))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"type": "Graph"}, "Unknown space type 'Graph'"),
        ({"type": "Box", "shape": [2]}, "Malformed Box space description"),
        ({"type": "Box", "shape": [1], "dtype": "float32", "low": "x", "high": 1}, "got 'x'"),
        ([1, 2], "Expected a space description with a 'type'"),
    ],
)
def test_a_malformed_description_is_refused(data, message):
    with pytest.raises(SpaceFormatError, match=re.escape(message)):
        space_from_json(data)
