"""The build step deploys the bundle picked in the trigger form (issue 18, item 1): ``hms rule push REF --of ID
--field params.bundle``. A pick that is no pushed bundle of this protocol is exit 2 naming the field; a pick is a
reference into the registry, never a path on the worker.
"""

from __future__ import annotations

import json

from hms.cli import main
from tests.conftest import CHIP, WILDFIRE
from tests.deploy_helpers import record, variant

PID = "wildfire-aid-2024"


def push(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["rule", "push", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_picked_bundle_of_this_protocol_is_what_the_build_step_takes(capsys, tmp_path):
    v2 = record(variant(2))
    record(variant(3))
    xcom = tmp_path / "x.json"
    for ref in (v2.sha256, f"sha256:{v2.sha256}", v2.sha256[:12], f"{PID}@2"):
        code = main(["--xcom-file", str(xcom), "rule", "push", ref, "--of", PID, "--field", "params.bundle"])
        capsys.readouterr()
        assert code == 0, ref
        got = json.loads(xcom.read_text())
        assert (got["sha256"], got["id"], got["new"]) == (v2.sha256, f"{PID}@2", False)


def test_a_bundle_of_another_protocol_is_refused_naming_the_field(capsys):
    chip = record(variant(1, CHIP))
    code, _, err = push(capsys, chip.sha256, "--of", PID, "--field", "params.bundle")
    assert code == 2
    assert err.startswith(
        f"hms: error: params.bundle: '{chip.sha256}' is chip-income-cap v1 ({chip.sha256[:12]}), not a bundle of {PID}"
    )


def test_a_pick_that_is_no_pushed_bundle_is_refused_naming_the_field_and_never_read_as_a_file(capsys):
    record(variant(2))
    for ref, why in (
        (str(WILDFIRE), "no bundle matches"),
        ("deadbeefdeadbeef", "no bundle matches"),
        (f"{PID}@9", "no bundle for wildfire-aid-2024 version 9"),
        (PID, "is a protocol"),
    ):
        code, _, err = push(capsys, ref, "--of", PID, "--field", "params.bundle")
        assert code == 2, ref
        assert err.startswith(f"hms: error: params.bundle: {ref!r} is not a pushed bundle of {PID}: "), err
        assert why in err, err


def test_without_a_field_the_repository_file_is_packed_as_before_and_must_be_of_the_protocol(capsys):
    code, out, _ = push(capsys, str(WILDFIRE), "--of", PID, "--field", "")
    assert code == 0 and f"{PID} v3" in out
    code, _, err = push(capsys, str(CHIP), "--of", PID, "--field", "")
    assert code == 2 and f"this is a bundle of chip-income-cap, not of {PID}" in err
