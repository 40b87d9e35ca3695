"""A bare protocol id to `hms rule review` / `hms rule deploy`: which bundle it means, and every refusal's reason."""

from __future__ import annotations

import pytest

from hms import bundle_choice, deployments
from hms.errors import BadInput
from hms.registry.db import session_scope
from tests.dated_protocols import build
from tests.deploy_helpers import approve, config, ready, record

PID = "wildfire-aid-2024"


def _review(ref: str) -> int:
    with session_scope(read_only=True) as s:
        return bundle_choice.for_review(s, ref, config()).protocol.version


def _deploy_choice(ref: str, env: str) -> int:
    with session_scope(read_only=True) as s:
        return bundle_choice.for_deploy(s, ref, env, config()).protocol.version


def _deploy(b, env: str) -> None:
    with session_scope() as s:
        deployments.deploy(s, b, env, activate_at=None, actor="t", config=config())


def _reject(b, user: str = "bob", role: str = "budget") -> None:
    with session_scope() as s:
        deployments.record_review(s, b, user=user, role=role, decision="reject", comment="over the cap",
                                  config=config())


def test_review_of_a_bare_id_is_its_newest_bundle_awaiting_review(registry_url):
    record(build(3))
    assert _review(PID) == 3
    record(build(4, max_payment=4000))
    assert _review(PID) == 4  # v3 is superseded: the clerk page refuses it (409), the intake skips it


def test_review_of_a_bare_id_says_why_nothing_awaits_review(registry_url):
    with pytest.raises(BadInput, match=rf"no bundle of '{PID}' is recorded: push it first"):
        _review(PID)
    b = record(build(3))
    approve(b, config())
    with pytest.raises(BadInput, match=rf"nothing of {PID} awaits review: {PID}@3 \({b.sha256[:12]}\) is already "
                                       r"approved by alice \(legal\), bob \(budget\)"):
        _review(PID)
    v4 = record(build(4, max_payment=4000))
    _reject(v4)
    with pytest.raises(BadInput, match=rf"{PID}@4 \({v4.sha256[:12]}\) was rejected by bob \(budget\): over the cap"):
        _review(PID)


def test_exact_references_still_name_exactly_one_bundle(registry_url):
    b3 = record(build(3))
    record(build(4, max_payment=4000))
    assert _review(f"{PID}@3") == 3  # an older version can still be named exactly
    assert _review(b3.sha256[:10]) == 3
    assert _review(f"sha256:{b3.sha256}") == 3


def test_a_bare_id_that_is_also_a_hash_prefix_is_ambiguous_and_names_every_candidate(registry_url):
    other = record(build(3))
    hexid = other.sha256[:10]  # a DNS-safe protocol id that is also the prefix of another bundle's hash
    mine = record(build(1, pid=hexid))
    with pytest.raises(BadInput, match="is ambiguous") as e:
        _review(hexid)
    assert f"{hexid}@1 ({mine.sha256[:12]})" in str(e.value)
    assert f"{PID}@3 ({other.sha256[:12]})" in str(e.value)
    with pytest.raises(BadInput, match="is ambiguous"):
        _deploy_choice(hexid, "staging")


def test_deploy_of_a_bare_id_takes_the_newest_into_the_first_environment_then_follows_promotion(registry_url):
    v3 = record(build(3))
    assert _deploy_choice(PID, "staging") == 3
    with pytest.raises(BadInput, match=f"nothing of {PID} is in force in staging, and preprod takes the bundle "
                                       "in force there: deploy to staging first"):
        _deploy_choice(PID, "preprod")
    ready(v3)
    _deploy(v3, "staging")
    _deploy(v3, "preprod")
    record(build(4, max_payment=4000))
    assert _deploy_choice(PID, "staging") == 4  # the newest version enters first
    assert _deploy_choice(PID, "preprod") == 3  # later environments take what the one before serves
    # v3 is the choice for prod; that it is superseded now is the deploy's own gate (exit 1), not a choice
    assert _deploy_choice(PID, "prod") == 3


def test_deploy_of_a_bare_id_refuses_a_rejected_newest_bundle_and_an_unknown_environment(registry_url):
    v3 = record(build(3))
    _reject(v3)
    with pytest.raises(BadInput, match=rf"nothing of {PID} to deploy to staging: .*rejected by bob .*{PID}@VERSION"):
        _deploy_choice(PID, "staging")
    with pytest.raises(BadInput, match="unknown environment 'qa'") as e:
        _deploy_choice(PID, "qa")
    assert e.value.where == "--env"


def test_other_commands_told_a_bare_id_are_asked_to_name_one_bundle(registry_url):
    record(build(3))
    record(build(4, max_payment=4000))
    with session_scope(read_only=True) as s, pytest.raises(BadInput, match=rf"'{PID}' is a protocol \(versions 4, "
                                                                           rf"3\): name one bundle, e\.g\. {PID}@4"):
        deployments.resolve_bundle_row(s, PID)
