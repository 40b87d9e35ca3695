"""The emergency path stays light: `hms rule rollback` loads neither the rule compiler nor NumPy nor jsonschema.

Rollback latency (bench_service: invocation → 4 replicas answer the previous version) is mostly the
`hms` process start, so one careless top-level import (hms.bundle → hms.protocol → hms.rules → NumPy,
jsonschema) puts ~0.15 s back on every rollback. These tests run the real command in a fresh
interpreter and read its ``sys.modules`` after the rollback went through, and check that the `hms`
entry point keeps the cyclic GC off the objects its imports built (hms.cli.run).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hms import deployments
from hms.pipeline_config import load_pipeline_config
from hms.registry.db import session_scope
from tests.conftest import WILDFIRE
from tests.deploy_helpers import promote_all, ready, record, variant, write_config

HEAVY = ("numpy", "jsonschema", "hms.bundle", "hms.protocol", "hms.rules", "kubernetes")

# Runs the CLI in-process in a fresh interpreter, then reports what it imported.
PROBE = """
import json, sys
from hms.cli import main
code = main(sys.argv[1:])
loaded = sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in HEAVY))
print(json.dumps({"exit": code, "heavy": loaded}))
"""


def _registry_with_v3_then_v4_in_prod(tmp_path: Path) -> dict[str, str]:
    config_file = write_config(tmp_path / "pipeline.yml")
    cfg = load_pipeline_config(config_file)  # validates once: later commands find the schema marker
    for v in (3, 4):
        b = record(variant(v, max_payment=5000 + v))
        ready(b, cfg)
        promote_all(b, cfg)
    env = {**os.environ, "HMS_PIPELINE_CONFIG": str(config_file)}
    env.pop("HMS_DATABASE_URL", None)
    return env


def _probe(env: dict[str, str], *args: str) -> dict:
    code = f"HEAVY = {HEAVY!r}\n" + PROBE
    r = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_rollback_imports_neither_numpy_nor_jsonschema_nor_the_bundle_parser(tmp_path: Path) -> None:
    env = _registry_with_v3_then_v4_in_prod(tmp_path)
    out = _probe(env, "rule", "rollback", "wildfire-aid-2024", "--env", "prod")
    assert out["exit"] == 0
    assert out["heavy"] == [], f"the rollback path imported {out['heavy']}"
    with session_scope(read_only=True) as s:
        assert deployments.in_force(s, "prod", "wildfire-aid-2024").version == 3  # it did roll back


def test_rollback_to_a_version_and_by_bundle_id_stay_light_too(tmp_path: Path) -> None:
    env = _registry_with_v3_then_v4_in_prod(tmp_path)
    first = _probe(env, "rule", "rollback", "wildfire-aid-2024@4", "--to", "3")
    again = _probe(env, "rule", "rollback", "wildfire-aid-2024", "--to", "4")
    assert (first["exit"], again["exit"]) == (0, 0)
    assert first["heavy"] == [] and again["heavy"] == []
    with session_scope(read_only=True) as s:
        assert deployments.in_force(s, "prod", "wildfire-aid-2024").version == 4


def test_the_probe_does_see_heavy_imports_where_they_belong(tmp_path: Path) -> None:
    """The check can fail: a command that parses bundles (push) shows up with NumPy and jsonschema."""
    env = {**os.environ, "HMS_PIPELINE_CONFIG": str(write_config(tmp_path / "pipeline.yml"))}
    out = _probe(env, "rule", "push", str(WILDFIRE))
    assert out["exit"] == 0
    assert {"numpy", "jsonschema", "hms.bundle", "hms.protocol"} <= set(out["heavy"])
    assert not any(m.startswith("kubernetes") for m in out["heavy"])


GC_PROBE = """
import gc, json, sys
from hms import cli
sys.argv = ["hms", *sys.argv[1:]]
try:
    ENTRY()
except SystemExit as e:
    code = e.code
else:
    code = 0
print(json.dumps({"exit": code, "frozen": gc.get_freeze_count(), "enabled": gc.isenabled()}))
"""


def _gc_probe(entry: str, *args: str) -> dict:
    code = GC_PROBE.replace("ENTRY()", entry)
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_the_hms_script_sets_its_import_objects_aside_from_the_gc_and_keeps_collecting() -> None:
    """`hms` (cli.run) freezes what the imports built, so no collection rescans it; the GC stays on."""
    out = _gc_probe("cli.run()", "audit", "verify")
    assert out["exit"] == 0
    assert out["frozen"] > 10_000 and out["enabled"] is True


def test_in_process_callers_keep_their_gc_untouched() -> None:
    out = _gc_probe("sys.exit(cli.main(sys.argv[1:]))", "audit", "verify")
    assert out["exit"] == 0
    assert out["frozen"] == 0 and out["enabled"] is True
