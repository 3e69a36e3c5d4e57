"""The image configuration of the source image (image-spec config.md), as frozen data.

Only what the slim image carries over or the analysis needs is read: the platform, the
entry point (Entrypoint, Cmd), Env, User, WorkingDir, ExposedPorts, Labels, StopSignal.
A field of the wrong JSON type is an error, not a guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scratchprobe.source.unpack import ImageSourceError

# What Docker and Podman use when an image sets no PATH (moby oci/defaults.go,
# DefaultPathEnv on Linux): the entry point is looked up in it.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class SourceConfig:
    os: str
    architecture: str
    variant: str | None
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    user: str | None
    workdir: str | None
    exposed_ports: tuple[str, ...]
    labels: tuple[tuple[str, str], ...]
    stop_signal: str | None

    @property
    def platform(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text

    @property
    def argv(self) -> tuple[str, ...]:
        """What the container runs: ENTRYPOINT then CMD (config.md "Entrypoint")."""
        return self.entrypoint + self.cmd

    @property
    def path(self) -> str:
        for key, value in self.env:
            if key == "PATH":
                return value
        return DEFAULT_PATH


def _strings(value: Any, name: str, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ImageSourceError(f"{where}: config {name} is not a list of strings")
    return tuple(value)


def _string(value: Any, name: str, where: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ImageSourceError(f"{where}: config {name} is not a string")
    return value


def parse_config(data: Any, where: str) -> SourceConfig:
    if not isinstance(data, dict):
        raise ImageSourceError(f"{where}: the image config is not a JSON object")
    container = data.get("config") or {}
    if not isinstance(container, dict):
        raise ImageSourceError(f"{where}: the image config's 'config' is not an object")
    env: list[tuple[str, str]] = []
    for item in _strings(container.get("Env"), "Env", where):
        key, _, value = item.partition("=")
        env.append((key, value))
    ports = container.get("ExposedPorts") or {}
    labels = container.get("Labels") or {}
    if not isinstance(ports, dict) or not isinstance(labels, dict):
        raise ImageSourceError(f"{where}: config ExposedPorts or Labels is not an object")
    if not all(isinstance(v, str) for v in labels.values()):
        raise ImageSourceError(f"{where}: config Labels has a value that is not a string")
    return SourceConfig(
        os=_string(data.get("os"), "os", where) or "linux",
        architecture=_string(data.get("architecture"), "architecture", where) or "",
        variant=_string(data.get("variant"), "variant", where),
        entrypoint=_strings(container.get("Entrypoint"), "Entrypoint", where),
        cmd=_strings(container.get("Cmd"), "Cmd", where),
        env=tuple(env),
        user=_string(container.get("User"), "User", where),
        workdir=_string(container.get("WorkingDir"), "WorkingDir", where),
        exposed_ports=tuple(sorted(str(p) for p in ports)),
        labels=tuple(sorted((str(k), v) for k, v in labels.items())),
        stop_signal=_string(container.get("StopSignal"), "StopSignal", where),
    )
