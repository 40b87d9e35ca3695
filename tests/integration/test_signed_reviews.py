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


def _keygen(tmp_path, env, user: str) -> tuple[object, dict]:
    """The clerk's key file, and the ``signers`` entry ``hms keygen`` prints for the admin's policy."""
    r = subprocess.run([HMS, "keygen", "--out", str(tmp_path / f"{user}.pem"), "--user", user], env=env,
                       capture_output=True, text=True, check=True)
    return tmp_path / f"{user}.pem", json.loads(r.stdout.splitlines()[-1])["signers"]


def test_a_clerk_signs_their_own_review_and_a_server_signature_in_their_name_no_longer_counts(hms_home, tmp_path):
    env = cli_env(hms_home)
    pin_config()
    with running_api(env) as api:
        sha = json.loads(api.hms("carol", "rule", "push", str(WILDFIRE), "--json").stdout)["sha256"]
        alice_key, alice = _keygen(tmp_path, env, "alice")
        bob_key, bob = _keygen(tmp_path, env, "bob")
        unlisted = api.hms("alice", "rule", "review", sha, "--role", "legal", "--approve", "--sign-with",
                           str(alice_key), check=False)
        assert unlisted.returncode == 2 and "signed by no trusted key" in unlisted.stderr, unlisted.stderr
        cfg = pin_config(signers={**alice, **bob})  # the admin's step: the keys enter the pinned policy
        forged = api.hms("alice", "rule", "review", sha, "--role", "legal", "--approve", "--sign-with", str(bob_key),
                         check=False)
        assert forged.returncode == 2 and "signed by user:bob" in forged.stderr
        api.hms("alice", "rule", "review", sha, "--role", "legal", "--approve", "--comment", "mine",
                "--sign-with", str(alice_key))
    keys.reset()
    envelopes.reset()
    with session_scope() as s:
        a = s.scalar(select(Approval).where(Approval.user == "alice"))
        trust = rows.review_trust(cfg)
        v = envelopes.verify(a.envelope, sha256=sha, predicate_type="https://hms-policy.dev/attestations/review/v1",
                             expect={}, trust=trust)
        assert v.owner == "user:alice" and rows.approval_refusal(a, trust) is None
        rows.sign_approval(a)  # what a compromised server could write: its own signature in alice's name
        assert "alice signs their own decisions" in rows.approval_refusal(a, trust)
