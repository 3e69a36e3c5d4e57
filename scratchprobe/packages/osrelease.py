"""Read os-release(5) inside the root: the distribution a package URL names.

systemd's os-release(5): /etc/os-release, else /usr/lib/os-release; lines of `KEY=value` in
shell quoting, `#` comments and blank lines ignored. Only ID and VERSION_ID are needed.
"""

from __future__ import annotations

import shlex

from scratchprobe.packages.interface import OsRelease
from scratchprobe.packages.stored import read_at_most
from scratchprobe.root import Root

OS_RELEASE_PATHS = ("/etc/os-release", "/usr/lib/os-release")
_MAX_BYTES = 64 << 10


def read_os_release(root: Root) -> OsRelease:
    """ID and VERSION_ID of the root's distribution; both None when no file says."""
    for path in OS_RELEASE_PATHS:
        try:
            resolved = root.resolve(path)
            if not resolved.is_file:
                continue
            with open(resolved.host_path, "rb") as handle:
                text = read_at_most(handle, _MAX_BYTES).decode("utf-8", "replace")
        except (OSError, ValueError):
            continue
        fields = parse_os_release(text)
        return OsRelease(id=fields.get("ID") or None, version_id=fields.get("VERSION_ID") or None)
    return OsRelease(None, None)


def parse_os_release(text: str) -> dict[str, str]:
    """The assignments of an os-release file; malformed lines are skipped."""
    fields: dict[str, str] = {}
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        try:
            words = shlex.split(raw, comments=False, posix=True)
        except ValueError:  # an unbalanced quote
            continue
        fields[key.strip()] = " ".join(words)
    return fields
