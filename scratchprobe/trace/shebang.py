"""A `#!` script given to verify is followed to its interpreter.

The kernel runs `#!INTERP [ARG]` scripts as `INTERP [ARG] SCRIPT ARGS...`: everything after
the interpreter's name up to the end of the line is one argument, and the line is read
from the first BINPRM_BUF_SIZE (256) bytes (execve(2), "Interpreter scripts"; Linux
fs/binfmt_script.c). The script itself goes into the image as an included entry.
"""

from __future__ import annotations

import os

from scratchprobe.root import Root, normalize, open_regular
from scratchprobe.trace.includes import Include

_BINPRM_BUF_SIZE = 256


def follow(path: str, root_directory: str) -> tuple[str, tuple[str, ...], Include] | None:
    """(interpreter, its argument if any, the script as an include), or None when `path`
    is not a script inside the root."""
    root = Root(root_directory)
    in_root = normalize(os.path.abspath(path)) if root.is_host else path
    if not in_root.startswith("/"):
        return None
    try:
        resolved = root.resolve(in_root)
        if not resolved.is_file:
            return None
        with os.fdopen(open_regular(resolved.host_path), "rb") as handle:
            head = handle.read(_BINPRM_BUF_SIZE)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    line = head[2:].split(b"\n", 1)[0].strip(b" \t")
    if not line:
        return None
    parts = line.split(None, 1)
    interpreter = os.fsdecode(parts[0])
    argument = (os.fsdecode(parts[1].strip(b" \t")),) if len(parts) > 1 else ()
    include = Include(
        source=in_root,
        reason=f"the script given to verify: its #! line runs {interpreter} with it",
        origin="verify",
    )
    return interpreter, argument, include
