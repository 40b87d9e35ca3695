"""A clerk signs their own decision with their own key, so that even a compromised server cannot forge it
(issue 15, item 2): ``hms keygen``, an admin trusting the key, ``hms rule review --sign-with`` through the
HMS API, and what no longer counts once a clerk signs for themselves."""

from __future__ import annotations

import json
import subprocess

from sqlalchemy import select

from hms.attest import envelopes, keys, rows
from hms.registry.db import session_scope
from hms.registry.models import Approval
from tests.api_helpers import HMS, cli_env, running_api
from tests.conftest import WILDFIRE
from tests.deploy_helpers import pin_config


def _keygen(tmp_path, env, user: str):
    r = subprocess.run([HMS, "keygen", "--out", str(tmp_path / f"{user}.pem"), "--user", user], env=env,
                       capture_output=True, text=True, check=True)
    entry = json.loads(r.stdout.splitlines()[-1])
    from securesystemslib.signer import Key

    keys.add_trusted(Key.from_dict(entry["keyid"], entry["key"]), entry["owner"])  # the admin's step
    return tmp_path / f"{user}.pem"


def test_a_clerk_signs_their_own_review_and_a_server_signature_in_their_name_no_longer_counts(hms_home, tmp_path):
    env = cli_env(hms_home)
    pin_config()
    with running_api(env) as api:
        sha = json.loads(api.hms("carol", "rule", "push", str(WILDFIRE), "--json").stdout)["sha256"]
        alice_key = _keygen(tmp_path, env, "alice")
        bob_key = _keygen(tmp_path, env, "bob")
        forged = api.hms("alice", "rule", "review", sha, "--role", "legal", "--approve", "--sign-with", str(bob_key),
                         check=False)
        assert forged.returncode == 2 and "signed by user:bob" in forged.stderr
        api.hms("alice", "rule", "review", sha, "--role", "legal", "--approve", "--comment", "mine",
                "--sign-with", str(alice_key))
    keys.reset()
    envelopes.reset()
    with session_scope() as s:
        a = s.scalar(select(Approval).where(Approval.user == "alice"))
        v = envelopes.verify(a.envelope, sha256=sha, predicate_type="https://hms-policy.dev/attestations/review/v1",
                             expect={})
        assert v.owner == "user:alice" and rows.approval_refusal(a) is None
        rows.sign_approval(a)  # what a compromised server could write: its own signature in alice's name
        assert "alice signs their own decisions" in rows.approval_refusal(a)
