"""The JSON manifest of every committed testbin validates against the schema and agrees with
readelf's MANIFEST.json, one process per testbin."""

from __future__ import annotations

import jsonschema
import pytest

from tests.conftest import TESTBINS, manifest, run_cli
from tests.unit.render.test_outputs import schema


@pytest.mark.slow  # one process per testbin; the fast loop validates a few in the tests below
@pytest.mark.parametrize("name", sorted(manifest()))
def test_manifest_validates_for_every_testbin(name: str) -> None:
    result = run_cli("inspect", "--format", "json", str(TESTBINS / name))
    doc = result.json()
    jsonschema.validate(doc, schema())
    assert doc["schema_version"] == 1
    (binary,) = doc["binaries"]
    record = manifest()[name]
    assert binary["interpreter"] == record["interpreter"]
    assert binary["needed"] == record["needed"]
    assert result.returncode in (0, 1)
    assert (result.returncode == 1) == bool(binary["missing"] or binary["missing_versions"]) or (
        binary["interpreter_found"] is False
    )
