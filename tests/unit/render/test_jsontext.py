"""render/jsontext.indented writes what `json.dumps(machine_document(value), indent=2)`
wrote: the same text for documents of every JSON type, hostile strings and keys, empty and
nested containers, and the same error for what JSON cannot hold."""

from __future__ import annotations

import json
import random

import pytest

from scratchprobe.render.jsontext import indented
from scratchprobe.render.names import machine_document, machine_text

STRINGS = (
    "",
    "plain",
    'quote " and \\ backslash',
    "tab\tnew\nline\r\x00\x1f\x7f",
    "ä ß 日本 \u2028 \ufeff \U0001f600",
    "lone \udcff byte",
    "/usr/lib/x86_64-linux-gnu/libc.so.6",
)
LEAVES = (*STRINGS, 0, -1, 2**70, 1.5, -0.0, 1e300, float("nan"), float("inf"), True, False, None)


def document(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(4 if depth < 4 else 1)
    if kind == 0:
        return rng.choice(LEAVES)
    if kind == 1:
        return [document(rng, depth + 1) for _ in range(rng.randrange(4))]
    if kind == 2:
        return tuple(document(rng, depth + 1) for _ in range(rng.randrange(3)))
    return {rng.choice(STRINGS) + str(i): document(rng, depth + 1) for i in range(rng.randrange(4))}


@pytest.mark.parametrize("seed", range(20))
def test_the_text_of_json_dumps(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(50):
        value = document(rng)
        expected = json.dumps(machine_document(value), indent=2)
        assert indented(value, machine_text) == expected
        assert indented(value) == json.dumps(value, indent=2)


def test_keys_of_other_types_are_converted_as_json_does() -> None:
    value = {3: "a", 2.5: [], True: {}, False: 1, None: (), "s": [[]], float("nan"): 0}
    assert indented(value) == json.dumps(value, indent=2)


def test_what_json_cannot_hold_is_the_same_error() -> None:
    for bad in ({"k": {1, 2}}, [b"bytes"], {(1, 2): "tuple key"}):
        with pytest.raises(TypeError) as expected:
            json.dumps(bad, indent=2)
        with pytest.raises(TypeError) as written:
            indented(bad)
        assert str(written.value) == str(expected.value)
