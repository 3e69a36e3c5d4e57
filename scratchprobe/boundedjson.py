"""JSON from inside a binary (cargo-auditable's .dep-v0, systemd's .note.dlopen), parsed
with a bound on nesting.

Python's json module parses arrays and objects recursively: a few thousand `[` exhaust the
interpreter's stack (RecursionError), and a document that parses near the limit fails again
later in json.dumps. Both formats are two or three levels deep (cargo-auditable's
cargo-auditable.schema.json; the FDO "ELF dlopen metadata" specification,
https://systemd.io/ELF_DLOPEN_METADATA/), so anything deeper than MAX_DEPTH is refused
before parsing, in one linear pass.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate

MAX_DEPTH = 64

# A JSON string (RFC 8259 §7): brackets inside one do not nest.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def nesting_depth(data: bytes) -> int:
    """The deepest array/object nesting of `data` (an upper bound for malformed text)."""
    brackets = _NOT_BRACKET.sub(b"", _STRING.sub(b"", data))
    return max(accumulate(_STEP[b] for b in brackets), default=0)


def loads(data: bytes, max_depth: int = MAX_DEPTH) -> object:
    """json.loads of UTF-8 `data`; ValueError when it is not JSON or nests too deeply."""
    depth = nesting_depth(data)
    if depth > max_depth:
        raise ValueError(f"JSON nested {depth} levels deep, more than {max_depth}")
    result: object = json.loads(data.decode("utf-8"))
    return result
