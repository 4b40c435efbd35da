"""Crafted pickles for the tests that check that nothing pickled runs unless it is trusted.

Importable as ``crafted_pickles`` (tests/ is on the Python path).
"""

from __future__ import annotations

import base64
import json
import pathlib
import pickle


class TouchOnUnpickle:
    """Unpickling this creates ``path``: a stand-in for any code an attacker could run."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path

    def __reduce__(self):
        return pathlib.Path.touch, (self.path,)


def crafted_sb3_data(data: str | bytes, marker: pathlib.Path) -> str:
    """SB3's ``data`` JSON with one more cloudpickled (``:serialized:``) entry: the payload.

    Unpickling the payload creates ``marker``.
    """
    entries = json.loads(data)
    payload = base64.b64encode(pickle.dumps(TouchOnUnpickle(marker))).decode()
    entries["rlagent_payload"] = {":type:": "<class 'object'>", ":serialized:": payload}
    return json.dumps(entries)
