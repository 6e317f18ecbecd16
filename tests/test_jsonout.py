"""lrdoctor/jsonout.py: the indented JSON document, written fast, is json.dumps' own."""
import json
import random

import pytest

from lrdoctor import jsonout
from lrdoctor.render import _clean

ATOMS = ["", "a", '"', "\\", "\\\\", '\\"', "[", "]", "{", "}", ",", ": ", "NaN", "Infinity",
         "-Infinity", "é", "\u2028", "x\ny", "\\u", "\t", "N", "Na", "\\\\\\"]


def reference(obj) -> str:
    return json.dumps(_clean(obj), indent=2, allow_nan=False)


def _value(rng, depth=0):
    r = rng.random()
    if depth > 4 or r < 0.3:
        return rng.choice([1, -2, 0.5, float("nan"), float("inf"), -float("inf"), None, True,
                           False, 1e308, -0.0, 10 ** 20,
                           "".join(rng.choice(ATOMS) for _ in range(rng.randint(0, 6)))])
    if r < 0.6:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 5))]
    if r < 0.8:
        return tuple(_value(rng, depth + 1) for _ in range(rng.randint(0, 3)))
    return {"".join(rng.choice(ATOMS) for _ in range(rng.randint(0, 4))) + str(k):
            _value(rng, depth + 1) for k in range(rng.randint(0, 5))}


@pytest.mark.parametrize("window", [3, 16, 1 << 20])
def test_the_document_is_json_dumps_indent_2_byte_for_byte(monkeypatch, window):
    """Strings full of quotes, backslashes, brackets, commas and the words NaN/Infinity;
    non-finite numbers (null); empty lists and objects; pieces cut anywhere a comma is."""
    monkeypatch.setattr(jsonout, "WINDOW", window)
    rng = random.Random(window)
    for _ in range(800):
        obj = _value(rng)
        assert jsonout.dumps(obj) == reference(obj), obj


def test_a_document_of_runs_and_strings_beyond_utf8():
    from lrdoctor.diagnosis import diagnose

    loss = [2.0 / (1 + s / 20) for s in range(200)]
    runs = [diagnose(loss, run=name)
            for name in ("a", 'q"uo\\te', "\U0001F600 emoji", "bytes \udcff\udcfe", "")]
    doc = {"runs": [d.to_dict() for d in runs], "x": [float("nan"), [], {}]}
    assert jsonout.dumps(doc) == reference(doc)
    assert json.loads(jsonout.dumps(doc))["runs"][1]["run"] == 'q"uo\\te'
