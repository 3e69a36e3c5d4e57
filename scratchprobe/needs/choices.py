"""The user's planning choices checked against the root before anything is planned.

`--tz ZONE` and `--user NAME` name things the image must hold: a zone the root's zoneinfo
lacks would leave TZ pointing nowhere (glibc's tzset falls back to UTC without a word, see
glibc time/tzfile.c), and a USER name absent from the image's /etc/passwd stops the
container before it starts (runc and crun resolve it in the image's passwd and group files:
"unable to find user"). Both are usage errors, found here, not in the middle of a plan.
A numeric UID[:GID] needs no entry: the runtime uses the numbers as given.
"""

from __future__ import annotations

import posixpath

from scratchprobe.errors import RootError
from scratchprobe.needs.context import NeedsOptions
from scratchprobe.needs.users import parse_user
from scratchprobe.needs.zoneinfo import ZONEINFO, is_zone_name
from scratchprobe.root import NotRegularFileError, Root


def choice_problems(root_directory: str, options: NeedsOptions) -> tuple[str, ...]:
    """One sentence per --tz or --user value the root cannot satisfy (empty when all can,
    or when the root itself is unusable: that is reported on its own)."""
    try:
        root = Root(root_directory)
    except RootError:
        return ()
    problems = [p for zone in options.tz if (p := _zone_problem(root, zone)) is not None]
    # Without --copy-etc the image's passwd and group are generated with the --user in them.
    if options.user is not None and options.copy_etc:
        problems += _user_problems(root, options.user)
    return tuple(problems)


def _zone_problem(root: Root, zone: str) -> str | None:
    if not is_zone_name(zone):
        return f"--tz {zone}: not a time zone name (like Europe/Paris)"
    try:
        if root.resolve(posixpath.join(ZONEINFO, zone)).is_file:
            return None
    except OSError:
        pass
    return f"--tz {zone}: no such zone in the root's {ZONEINFO}"


def _names(root: Root, path: str) -> set[str] | None:
    """The names (first field) of a passwd-format file in the root; None when it is absent.
    NotRegularFileError for a FIFO, socket or device there (never read: a FIFO would block)."""
    try:
        text = root.read_text(path)
    except NotRegularFileError:
        raise
    except OSError:
        return None
    return {line.split(":", 1)[0] for line in text.splitlines() if ":" in line}


def _user_problems(root: Root, spec: str) -> list[str]:
    name, _uid, group, _gid = parse_user(spec)
    problems: list[str] = []
    for value, path in ((name, "/etc/passwd"), (group, "/etc/group")):
        if value is None:
            continue
        try:
            names = _names(root, path)
        except NotRegularFileError as exc:
            problems.append(f"--user {spec}: {path} is {exc.strerror}")
            continue
        if names is None:
            problems.append(
                f"--user {spec}: the root has no {path} (drop --copy-etc to generate one)"
            )
        elif value not in names:
            problems.append(
                f"--user {spec}: {value} is not in the root's {path} (add it there or drop "
                "--copy-etc)"
            )
    return problems
