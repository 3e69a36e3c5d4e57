"""The escaping fast paths of render/names.py give the per-character rule's answer."""

from __future__ import annotations

import random

from scratchprobe.render import names

_ALPHABET = (
    "a", " ", "\\", "\n", "\t", "\x00", "\x7f", "\x85", "é", "\u2028", "\u202e", "\ufffe",
    "\udc80", "\udcff", "\ud800",
)  # fmt: skip


def _reference(text: str, controls: bool, keep: str) -> str:
    def needs(ch: str) -> bool:
        return names._is_surrogate(ch) or (controls and ch not in keep and names._is_control(ch))

    if not any(needs(ch) for ch in text):
        return text
    return "".join(
        "\\\\" if ch == "\\" else names._escape_char(ch) if needs(ch) else ch for ch in text
    )


def test_escape_equals_the_per_character_rule() -> None:
    pick = random.Random(10)
    for _ in range(5000):
        text = "".join(pick.choice(_ALPHABET) for _ in range(pick.randint(0, 6)))
        assert names.machine_text(text) == _reference(text, False, ""), repr(text)
        assert names.visible_text(text) == _reference(text, True, ""), repr(text)
        assert names.visible_text(text, "\n\t") == _reference(text, True, "\n\t"), repr(text)
        assert names.is_utf8(text) == (not any(names._is_surrogate(c) for c in text))
