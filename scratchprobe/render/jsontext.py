"""JSON text exactly as `json.dumps(value, indent=2)` writes it, in one pass, faster.

With `indent`, the standard library encodes in pure Python, with a generator per list and
per object (json/encoder.py `_make_iterencode`; its C encoder serves only the compact
form): a 870 KB manifest (gdb with its Python tree) took 14 ms of the run. This writer
keeps json.dumps' rules (ensure_ascii escaping by the same C function, `,` and `: `
separators, two spaces a level, `[]` and `{}` for empty containers, the key conversions of
int, float, bool and None keys, NaN and Infinity for floats) and applies `text` to every
string and key on the way, where the manifest otherwise rebuilt the document first
(render.names.machine_document). tests/unit/render/test_jsontext.py compares the two.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from json.encoder import encode_basestring_ascii
from typing import Any


def _same(text: str) -> str:
    return text


def indented(value: Any, text: Callable[[str], str] = _same) -> str:
    """`json.dumps(value, indent=2)` with every string (keys included) through `text`."""
    out: list[str] = []
    _write(value, "\n", out, text)
    return "".join(out)


def _float(value: float) -> str:
    # json.encoder's floatstr (allow_nan=True).
    if math.isnan(value):
        return "NaN"
    if value == float("inf"):
        return "Infinity"
    if value == -float("inf"):
        return "-Infinity"
    return float.__repr__(value)


def _key(key: Any, text: Callable[[str], str]) -> str:
    # json.encoder's key conversion (skipkeys=False), in its order.
    if isinstance(key, str):
        return text(key)
    if isinstance(key, float):
        return _float(key)
    if key is True:
        return "true"
    if key is False:
        return "false"
    if key is None:
        return "null"
    if isinstance(key, int):
        return int.__repr__(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {key.__class__.__name__}")


def _write(value: Any, newline: str, out: list[str], text: Callable[[str], str]) -> None:
    # The type tests in json.encoder's order (bool before int: True is an int).
    if isinstance(value, str):
        out.append(encode_basestring_ascii(text(value)))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        out.append(_float(value))
    elif isinstance(value, list | tuple):
        if not value:
            out.append("[]")
            return
        inner = newline + "  "
        separator = "[" + inner
        for item in value:
            out.append(separator)
            separator = "," + inner
            _write(item, inner, out, text)
        out.append(newline + "]")
    elif isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        inner = newline + "  "
        separator = "{" + inner
        for key, item in value.items():
            out.append(separator + encode_basestring_ascii(_key(key, text)) + ": ")
            separator = "," + inner
            _write(item, inner, out, text)
        out.append(newline + "}")
    else:
        raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")
