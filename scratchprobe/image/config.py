"""The image configuration (image-spec config.md) built from the plan and the options.

What comes from the plan: the ENV its runtime needs set (TZ, SSL_CERT_FILE, ...), USER
(`--user`, whose passwd entry the users detector checks), the platform (read from the
binaries) and the layers. What comes from the options: ENTRYPOINT (default: the first
binary), CMD, WORKDIR, labels and extra ENV (`--env`, which wins over the plan's value of
the same variable, as a later ENV line of a Dockerfile would). With `--from-image`, the
source image's config gives the defaults of these, and its exposed ports and stop signal.

`created` is SOURCE_DATE_EPOCH (else the epoch, 0) in RFC 3339, like every timestamp of the
image: the same inputs give the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from scratchprobe.image.layers import LayerBlob, describe
from scratchprobe.image.platform import Platform

MEDIA_TYPE_CONFIG = "application/vnd.oci.image.config.v1+json"


@dataclass(frozen=True)
class RunConfig:
    """How a container of the image starts (the config's `config` object)."""

    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...] | None = None
    env: tuple[tuple[str, str], ...] = ()
    user: str | None = None
    workdir: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    exposed_ports: tuple[str, ...] = ()
    """config.md ExposedPorts keys (`80/tcp`); from a --from-image source."""
    stop_signal: str | None = None
    """config.md StopSignal (`SIGQUIT`); from a --from-image source."""


def rfc3339(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merged_env(
    plan_env: tuple[tuple[str, str], ...], extra: tuple[tuple[str, str], ...]
) -> tuple[tuple[str, str], ...]:
    """The plan's variables, then `extra`; a later value replaces an earlier one in place."""
    env: dict[str, str] = {}
    for key, value in plan_env + extra:
        env[key] = value
    return tuple(env.items())


def canonical_json(data: object) -> bytes:
    """The one serialisation every JSON blob uses: sorted keys, no spaces, UTF-8."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def config_json(
    run: RunConfig, platform: Platform, layers: tuple[LayerBlob, ...], created: int
) -> bytes:
    """The config blob's bytes."""
    timestamp = rfc3339(created)
    container: dict[str, Any] = {"Entrypoint": list(run.entrypoint)}
    if run.cmd is not None:
        container["Cmd"] = list(run.cmd)
    if run.env:
        container["Env"] = [f"{key}={value}" for key, value in run.env]
    if run.user:
        container["User"] = run.user
    if run.workdir:
        container["WorkingDir"] = run.workdir
    if run.labels:
        container["Labels"] = dict(run.labels)
    if run.exposed_ports:
        # config.md: "ExposedPorts ... The keys are ... the values are empty objects".
        container["ExposedPorts"] = {port: {} for port in run.exposed_ports}
    if run.stop_signal:
        container["StopSignal"] = run.stop_signal
    data: dict[str, Any] = {
        "created": timestamp,
        **platform.as_json(),
        "config": container,
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [
            {
                "created": timestamp,
                "created_by": f"scratchprobe image: {layer.role.value} layer",
                "comment": describe(layer.role),
            }
            for layer in layers
        ],
    }
    return canonical_json(data)
