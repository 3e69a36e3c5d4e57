"""packages.interface.package_url writes what packageurl-python writes (the oracle, as
pyelftools is for the symbol reader): the same string, or the same error, for every type
scratchprobe writes and for names, namespaces, versions and qualifiers a hostile database or
binary could hold."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

import pytest
from packageurl import PackageURL

from scratchprobe.packages.interface import package_url

KINDS = ("deb", "apk", "rpm", "golang", "cargo")
TEXTS = (
    "",
    " ",
    "/",
    "//",
    "a",
    " a ",
    "A",
    "Foo+Bar",
    "a/b",
    "/a/b/",
    "x/ y /",
    " / x",
    "a b",
    "a%3Ab",
    "a:b",
    "1:2.36-9+deb12u4",
    "@?#&=",
    "~_.-",
    "\t",
    "ä",
    "日本",
    "\udcff",
    "github.com/Foo/Bar",
    "golang.org/x/net",
    "v0.0.0-20230101-abcdef",
)


Args = tuple[str, str | None, str, str | None, dict[str, str | None]]


def ours(args: Args) -> str:
    return package_url(*args)


def oracle(args: Args) -> str:
    """What package_url wrote when it called packageurl (the same arguments)."""
    kept = {key: value for key, value in args[4].items() if value}
    purl = PackageURL(
        type=args[0], namespace=args[1], name=args[2], version=args[3] or None, qualifiers=kept
    )
    return str(purl.to_string())


def outcome(function: Callable[[Args], str], args: Args) -> tuple[str, str]:
    try:
        return ("ok", function(args))
    except Exception as exc:  # the same error, of the same type, is part of the contract
        return (type(exc).__name__, str(exc))


def test_every_name_and_namespace_of_every_kind() -> None:
    for kind, namespace, name in itertools.product(KINDS, (None, *TEXTS), TEXTS):
        args: Args = (kind, namespace, name, "1.0", {"arch": "amd64"})
        assert outcome(ours, args) == outcome(oracle, args), args


@pytest.mark.parametrize("seed", range(4))
def test_random_purls(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(1500):
        qualifiers = {
            key: rng.choice((None, *TEXTS)) for key in rng.sample(("arch", "distro", "epoch"), 2)
        }
        args: Args = (
            rng.choice(KINDS),
            rng.choice((None, *TEXTS)),
            rng.choice(TEXTS),
            rng.choice((None, *TEXTS)),
            qualifiers,
        )
        assert outcome(ours, args) == outcome(oracle, args), args


def test_the_purls_scratchprobe_writes() -> None:
    assert (
        package_url(
            "deb", "debian", "libc6", "2.36-9+deb12u4", {"arch": "amd64", "distro": "debian-12"}
        )
        == "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12"
    )
    assert package_url("golang", None, "stdlib", "1.22.1", {}) == "pkg:golang/stdlib@1.22.1"
    assert package_url("apk", "Alpine", "Musl", None, {"arch": None}) == "pkg:apk/alpine/musl"
