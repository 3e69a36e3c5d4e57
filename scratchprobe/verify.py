"""`verify`: prove a plan by running the binary inside exactly the root filesystem it describes.

The root filesystem is written by the same writer as `scratchprobe rootfs`, into a temporary
directory, and the binary runs there in a sandbox (see sandbox.py) with a cleared environment.
A foreign binary runs through a static QEMU user-mode emulator copied into that root, at
/.scratchprobe/qemu-ARCH-static; the emulator's own ELF loader then opens the binary's
interpreter and libraries inside the sandbox, so a missing file still makes the run fail.

With `compare`, the same command also runs "in the builder": in the same sandbox, showing
the builder's tree (`--root`, the host's `/` by default) read-only as `/`, never on the host
itself. Both runs get the same argv[0], environment, working directory (`/`), user,
network and writable paths, so their outputs can be compared byte for byte.

The core never prints: it returns a `Verification`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace

from scratchprobe.errors import InputError, UsageError
from scratchprobe.model import InspectOptions
from scratchprobe.needs.model import ContainerRuntime
from scratchprobe.needs.nameservice import HOSTS
from scratchprobe.pipeline import inspect_for_image
from scratchprobe.plan import FileKind, FileType, ImageFile, Plan
from scratchprobe.root import Root
from scratchprobe.rootfs import Destination, OutputKind, RootfsResult, write_rootfs
from scratchprobe.sandbox import (
    BUILDER_HIDDEN,
    Emulator,
    Mount,
    MountKind,
    RunResult,
    SandboxKind,
    SandboxSpec,
    builder_mounts,
    emulator_for,
    find_sandbox,
    run_sandboxed,
)

DEFAULT_TIMEOUT = 60.0

Runner = Callable[[SandboxSpec, SandboxKind, float | None, tuple[str, ...]], RunResult]
"""How the image run is run: spec, sandbox kind, timeout, tracer words."""


@dataclass(frozen=True)
class VerifyOptions:
    root: str = "/"
    library_path: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    """Arguments after the binary's own path."""
    env: tuple[tuple[str, str], ...] = ()
    """Added to the image's ENV (the plan's TZ, LANG, ...), winning over it: the only
    environment the program gets, in both runs."""
    compare: bool = False
    timeout: float | None = DEFAULT_TIMEOUT
    network: bool = False
    """Share the host's network; False (the default): a network of its own, only loopback."""
    sandbox: SandboxKind | None = None
    """None: bwrap (the only sandbox; UNSHARE is refused with the install hint)."""
    plan: InspectOptions | None = None
    """How to plan the image (runtime needs, --tz, --user, ...); None: the defaults."""
    add_hosts: tuple[tuple[str, str], ...] = ()
    """(name, address) lines for the runtime-provided /etc/hosts, as `docker run --add-host`."""
    writable: tuple[str, ...] = ()
    """Paths (inside the image) that are writable in the run; the rest of the root is
    read-only except /tmp."""
    tracer: tuple[str, ...] = ()
    """Words run before the sandbox runner of the image run (`verify --trace`: strace)."""
    runner: Runner | None = None
    """Runs the image run instead of `run_sandboxed` (`verify --probe`: with a probe)."""


RUNTIME_HOSTS = HOSTS


def provide_runtime_files(
    rootfs: str,
    add_hosts: tuple[tuple[str, str], ...],
    runtime: ContainerRuntime = ContainerRuntime.DOCKER,
) -> None:
    """Write what the chosen runtime mounts into a container. Docker, Podman and Kubernetes:
    /etc/hosts (localhost plus --add-host lines) and /etc/resolv.conf (the host's, as Docker
    and Podman copy it); the plan lists these as runtime-provided and never copies them.
    A bare runtime mounts nothing: the image's own files are what the program gets, and
    --add-host lines (verify's way to name a test host) are appended to its /etc/hosts."""
    etc = os.path.join(rootfs, "etc")
    if os.path.islink(etc):
        return
    extra = "".join(f"{address}\t{name}\n" for name, address in add_hosts)
    if runtime is ContainerRuntime.BARE:
        if extra:
            os.makedirs(etc, mode=0o755, exist_ok=True)
            hosts = os.path.join(etc, "hosts")
            if not os.path.islink(hosts):
                with open(hosts, "a", encoding="utf-8") as handle:
                    handle.write(extra)
        return
    os.makedirs(etc, mode=0o755, exist_ok=True)
    hosts = RUNTIME_HOSTS + extra
    for name, content in (("hosts", hosts), ("resolv.conf", _host_resolv_conf())):
        path = os.path.join(etc, name)
        if not os.path.lexists(path):
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(content)


def _host_resolv_conf() -> str:
    try:
        with open("/etc/resolv.conf", encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""


@dataclass(frozen=True)
class Comparison:
    """Whether the image run behaved like the builder run."""

    exit_status: bool
    stdout: bool
    stderr: bool

    @property
    def matches(self) -> bool:
        return self.exit_status and self.stdout and self.stderr


@dataclass(frozen=True)
class Verification:
    label: str
    """The binary as given on the command line."""
    image_path: str
    arch: str
    emulator: Emulator | None
    sandbox: SandboxKind
    rootfs: RootfsResult
    """What was written (in a temporary directory, gone by now)."""
    unresolved: bool
    """The plan itself says some library, version or interpreter is missing."""
    image_run: RunResult
    builder_run: RunResult | None
    comparison: Comparison | None
    warnings: tuple[str, ...]
    plan: Plan | None = None
    """What the image held (the tracer's analysis compares the run with it)."""

    @property
    def passed(self) -> bool:
        if not self.image_run.succeeded:
            return False
        return self.comparison is None or self.comparison.matches

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1


def compare_runs(image: RunResult, builder: RunResult) -> Comparison:
    return Comparison(
        exit_status=(image.exit_status, image.exec_error, image.timed_out)
        == (builder.exit_status, builder.exec_error, builder.timed_out),
        stdout=image.stdout == builder.stdout,
        stderr=image.stderr == builder.stderr,
    )


def _with_emulator(plan: Plan, emulator: Emulator) -> Plan:
    entry = ImageFile(
        path=emulator.image_path,
        type=FileType.FILE,
        kind=FileKind.BINARY,
        reason=f"verify only: runs the {emulator.arch} binary on this machine",
        source=emulator.host_path,
        from_context=True,
    )
    return replace(plan, files=(*plan.files, entry))


def verify(binary: str, options: VerifyOptions) -> Verification:
    """Write the binary's root filesystem to a temporary place and run it there.

    Raises InputError for an unusable binary, UsageError when the argument names several,
    SandboxUnavailable / CannotEmulate when nothing can run it here.
    """
    plan_options = options.plan or InspectOptions(
        root=options.root, library_path=options.library_path
    )
    inspection = inspect_for_image((binary,), plan_options)
    if inspection.problems:
        problem = inspection.problems[0]
        raise InputError(problem.path, problem.message)
    if len(inspection.binaries) != 1:
        raise UsageError(f"{binary}: verify runs one binary, this names {len(inspection.binaries)}")
    report = inspection.binaries[0]
    arch = report.elf.arch.name
    emulator = emulator_for(arch)
    kind = find_sandbox(options.sandbox)
    plan = inspection.plan if emulator is None else _with_emulator(inspection.plan, emulator)
    root = inspection.fs
    argv = (report.path, *options.args)
    if emulator is not None:
        argv = (emulator.image_path, *argv)
    # The image's ENV (TZ, LANG, SSL_CERT_FILE, ... that the plan's needs set) is what a
    # container runtime gives the program; --env values win, as `docker run -e` does.
    env = tuple({**dict(inspection.env), **dict(options.env)}.items())
    options = replace(options, env=env)
    builder_run = None
    comparison = None
    # The rootfs goes away however the run ends: an error, the timeout, ^C (the CLI turns
    # SIGTERM into an exception too).
    with tempfile.TemporaryDirectory(prefix="scratchprobe-verify-") as work:
        rootfs = write_rootfs(
            plan, root, Destination(os.path.join(work, "rootfs"), OutputKind.DIRECTORY)
        )
        provide_runtime_files(
            rootfs.destination.path, options.add_hosts, plan_options.needs.runtime
        )
        image_spec = SandboxSpec(
            argv=argv,
            root=rootfs.destination.path,
            env=options.env,
            network=options.network,
            writable=options.writable,
        )
        runner = options.runner or run_sandboxed
        image_run = runner(image_spec, kind, options.timeout, options.tracer)
    if options.compare:
        builder_run = _run_in_builder(
            report.path,
            report.source,
            report.from_context,
            root,
            argv,
            emulator,
            kind,
            options,
            plan,
        )
        comparison = compare_runs(image_run, builder_run)
    return Verification(
        label=report.label,
        image_path=report.path,
        arch=arch,
        emulator=emulator,
        sandbox=kind,
        rootfs=rootfs,
        unresolved=report.unresolved,
        image_run=image_run,
        builder_run=builder_run,
        comparison=comparison,
        warnings=tuple(dict.fromkeys(inspection.warnings + rootfs.layout.warnings)),
        plan=plan,
    )


def _run_in_builder(
    image_path: str,
    source: str,
    from_context: bool,
    root: Root,
    argv: tuple[str, ...],
    emulator: Emulator | None,
    kind: SandboxKind,
    options: VerifyOptions,
    plan: Plan,
) -> RunResult:
    """The same command in the builder's filesystem, with the same argv and environment,
    in the same sandbox: the builder's tree (the host's `/` too) is only seen read-only."""
    mounts = list(builder_mounts(root.directory))
    top = image_path.strip("/").split("/", 1)[0]
    if from_context or top in BUILDER_HIDDEN:
        # A build-context binary is not in the builder's tree, and one under /tmp of the
        # host's root is hidden by the fresh /tmp: show it at its image path.
        mounts.append(Mount(MountKind.RO_BIND, image_path, os.path.realpath(source)))
    # Files of the plan that the builder holds under a directory its view hides (a checkout
    # or build tree under /tmp: the binary's $ORIGIN libraries) are shown at their builder
    # paths, read-only, so the builder run loads what the plan copied.
    shown = {m.destination for m in mounts}
    for entry in plan.files:
        if entry.source is None or entry.from_context or entry.type is not FileType.FILE:
            continue
        if entry.source.strip("/").split("/", 1)[0] not in BUILDER_HIDDEN:
            continue
        if entry.source not in shown:
            host = root.resolve(entry.source).host_path
            mounts.append(Mount(MountKind.RO_BIND, entry.source, host))
            shown.add(entry.source)
    if emulator is not None:
        mounts.append(Mount(MountKind.RO_BIND, emulator.image_path, emulator.host_path))
    spec = SandboxSpec(
        argv=argv,
        root=None,
        mounts=tuple(mounts),
        env=options.env,
        network=options.network,
        writable=options.writable,
    )
    return run_sandboxed(spec, kind, options.timeout)
