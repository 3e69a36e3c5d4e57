"""How a name (a path, a soname, a message quoting one) is written in each output.

File names are bytes; Python hands them to us decoded as UTF-8 with `surrogateescape`
(PEP 383): a byte that is not part of valid UTF-8 becomes the lone surrogate U+DC80+byte. No
strict UTF-8 encoder, JSON parser or XML parser accepts a lone surrogate, and a control
character in a name (a newline, an ESC sequence) forges lines or rewrites a terminal. The one
escaping every output uses is documented in docs/output-encoding.md:

- a string with nothing to escape is written exactly as it is (so ordinary names are
  byte-identical in every output);
- otherwise every backslash is doubled and each escaped character is written `\\xNN`: an
  undecodable byte by its byte value, a C0 control or DEL by its code point; a C1 control or
  another invisible line-breaking or bidirectional-override character is written `\\uNNNN`.
  The result is lossless: `\\\\` is a backslash, `\\xNN` a byte, `\\uNNNN` a code point.

`machine_text` escapes only what a format cannot carry at all (undecodable bytes; JSON has its
own escapes for every code point); `visible_text` also escapes what must never reach a
terminal or a line-oriented reader as it is (control characters).

A Dockerfile cannot carry some names at all: `dockerfile_refusal` says why.
"""

from __future__ import annotations

import os
from typing import Any

# Invisible characters that break lines or reorder text in a terminal without being Cc:
# LINE SEPARATOR, PARAGRAPH SEPARATOR and the bidirectional embeddings, overrides and
# isolates (Unicode Standard Annex #9, "Explicit Directional Formatting Characters").
_INVISIBLE = frozenset("\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Code points no XML 1.0 document may contain (XML 1.0 §2.2, production [2] Char) besides the
# C0 controls other than TAB, LF and CR: the non-characters U+FFFE and U+FFFF.
_NON_CHARACTERS = frozenset("\ufffe\uffff")


def _is_surrogate(ch: str) -> bool:
    return "\ud800" <= ch <= "\udfff"


def _is_control(ch: str) -> bool:
    if ch < "\x80":
        # The Cc characters of ASCII: C0 and DEL (Unicode's general category table).
        return ch < " " or ch == "\x7f"
    import unicodedata  # 0.5 ms, paid only for a name that is not ASCII

    return unicodedata.category(ch) == "Cc" or ch in _INVISIBLE or ch in _NON_CHARACTERS


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:
        # surrogateescape: the undecodable byte itself.
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x80:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def _has_surrogate(text: str) -> bool:
    # The strict UTF-8 codec refuses exactly the surrogates (RFC 3629 §3), and runs in C:
    # a manifest holds ~10^5 strings, and a per-character test of each cost seconds.
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _escape(text: str, controls: bool, keep: str) -> str:
    # Fast paths, same answer: without surrogates there is nothing for machine_text to
    # escape, and printable ASCII holds no Cc character (the invisible characters and
    # non-characters above are all outside ASCII).
    if not controls and not _has_surrogate(text):
        return text
    if controls and text.isascii() and text.isprintable():
        return text

    def needs(ch: str) -> bool:
        return _is_surrogate(ch) or (controls and ch not in keep and _is_control(ch))

    if not any(needs(ch) for ch in text):
        return text
    out: list[str] = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif needs(ch):
            out.append(_escape_char(ch))
        else:
            out.append(ch)
    return "".join(out)


def machine_text(text: str) -> str:
    """`text` with every undecodable byte as `\\xNN` (and then backslashes doubled); a valid
    UTF-8 string is returned unchanged. For JSON, which escapes control characters itself."""
    return _escape(text, controls=False, keep="")


def visible_text(text: str, keep: str = "") -> str:
    """`text` with undecodable bytes and control characters (except those in `keep`)
    escaped, for terminals, line-oriented logs and XML: a name can never forge a line."""
    return _escape(text, controls=True, keep=keep)


def is_utf8(text: str) -> bool:
    """Whether `text` came from valid UTF-8 bytes (it holds no surrogate)."""
    return not _has_surrogate(text)


def raw_base64(text: str) -> str:
    """The exact bytes of a name, base64 (RFC 4648): the lossless form beside an escaped one."""
    import base64  # only a name that is not UTF-8 has one

    return base64.b64encode(os.fsencode(text)).decode("ascii")


def machine_document(value: Any) -> Any:
    """Every string of a JSON document (keys included) through `machine_text`."""
    if isinstance(value, str):
        return machine_text(value)
    if isinstance(value, dict):
        return {machine_text(k): machine_document(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [machine_document(v) for v in value]
    return value


# Characters a COPY source or destination must not hold. BuildKit and Buildah treat `*`, `?`
# and `[` in a source as a glob pattern (Go's filepath.Match syntax, in which `\` escapes the
# next character), so such a name would copy whatever the pattern matches; Buildah's copier
# also reads `\` in a source as a pattern escape (a real `podman build` does not find
# `/d/back\slash`). No escaping means the same in both, so these names are refused.
_GLOB = frozenset("*?[\\")


def dockerfile_refusal(name: str) -> str | None:
    """Why `name` cannot be written in a Dockerfile instruction, or None when it can.

    A Dockerfile is UTF-8 text read line by line, so a byte that is not UTF-8 has no
    spelling, and a control character is either a line break (which would end the
    instruction) or invisible; both are refused rather than guessed at.
    """
    if not is_utf8(name):
        return "it is not valid UTF-8, and a Dockerfile is UTF-8 text"
    if any(_is_control(ch) for ch in name):
        return "it holds a control character, which no Dockerfile instruction can carry"
    return None


def copy_refusal(name: str) -> str | None:
    """`dockerfile_refusal`, and the glob characters a COPY source would expand."""
    reason = dockerfile_refusal(name)
    if reason is None and any(ch in _GLOB for ch in name):
        reason = "COPY reads *, ?, [ and \\ in a source as a pattern, so it would copy other files"
    return reason


# Characters BuildKit's and Buildah's Dockerfile word processing (moby/buildkit
# frontend/dockerfile/shell/lex.go, `processStopOn`; the same lexer in openshift/imagebuilder)
# gives a meaning in a COPY, ENV or USER argument: quotes are removed, `$` starts a variable
# and the escape character `\` escapes the next character. Outside quotes, `\` makes any next
# character literal, so each of these is written with a backslash before it.
_DOCKERFILE_SPECIAL = frozenset("\\$'\"")


def dockerfile_word(name: str) -> str:
    """`name` as one Dockerfile word whose variable expansion and quote removal give it back."""
    return "".join("\\" + ch if ch in _DOCKERFILE_SPECIAL else ch for ch in name)
