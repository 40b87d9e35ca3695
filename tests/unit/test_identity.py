"""Who acts (hms.identity): authenticated, never typed in.

Embedded mode's principal is the kernel's account of the process (``geteuid``), not ``$USER``, not
``HMS_ACTOR`` (refused), not ``--user`` (it must name the principal); the pipeline is who presents the
secret only its account can read, or whoever an in-process caller says it is (``acting_as``). One OS
account is one person: one approval per bundle, none for what it pushed or wrote.
"""

from __future__ import annotations

import getpass
import os
import pwd
import stat
import unicodedata

import pytest

from hms import deployments, identity, protocol
from hms.cli import main
from hms.errors import BadInput
from hms.identity import Principal
from hms.registry import audit
from hms.registry.db import session_scope
from tests.conftest import WILDFIRE
from tests.deploy_helpers import pin_config, record, users_with_os_account, variant

PID = "wildfire-aid-2024"


def kernel_account() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


def audit_count() -> int:
    with session_scope(read_only=True) as s:
        return len(audit.entries(s))


# ---- the OS account -----------------------------------------------------------------------------------------
def test_without_a_secret_or_an_in_process_principal_the_os_account_acts():
    me = identity.current()
    assert me == Principal(kernel_account(), "os-account") and not me.is_pipeline
    assert identity.os_account() == kernel_account()


def test_user_and_logname_do_not_change_the_principal(monkeypatch):
    for name in ("USER", "LOGNAME", "LNAME", "USERNAME"):
        monkeypatch.setenv(name, "mallory")
    assert getpass.getuser() == "mallory"  # what a typed-in identity would have read
    assert identity.current().name == kernel_account()
    assert identity.os_account() == kernel_account()


@pytest.mark.parametrize("value", ["ops", "alice", "kernel-account"])
def test_hms_actor_is_refused_as_bad_input_naming_it_whatever_it_says(monkeypatch, value):
    monkeypatch.setenv("HMS_ACTOR", kernel_account() if value == "kernel-account" else value)
    with pytest.raises(BadInput) as e:
        identity.current()
    assert e.value.where == "HMS_ACTOR" and e.value.exit_code == 2
    assert "HMS_ACTOR is not an identity" in e.value.message and "unset HMS_ACTOR" in e.value.message


def test_a_command_run_with_hms_actor_set_exits_2_naming_it_and_records_nothing(monkeypatch, capsys):
    monkeypatch.setenv("HMS_ACTOR", "ops")
    assert main(["rule", "push", str(WILDFIRE)]) == 2
    assert "hms: error: HMS_ACTOR: HMS_ACTOR is not an identity" in capsys.readouterr().err
    with session_scope(read_only=True) as s:
        entries = [(e.action, e.actor) for e in audit.entries(s)]
    assert entries == []  # refused before anything: no bundle, not even the embedded policy's bootstrap


def _fullwidth_upper(name: str) -> str:
    """The same name as another string: upper case, ASCII letters and digits as their full-width forms."""
    return "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalnum() else c for c in name.upper())


def test_user_naming_someone_else_is_refused_and_the_same_person_is_accepted():
    me = identity.current()
    with pytest.raises(BadInput) as e:
        identity.claimed("mallory", me)
    assert e.value.where == "--user" and "'mallory' is not who is acting" in e.value.message
    assert f"authenticated as {kernel_account()} (os-account)" in e.value.message
    with pytest.raises(BadInput, match="is not who is acting"):
        identity.claimed("mallory", me, where="user")
    same = f"  {_fullwidth_upper(kernel_account())} "
    assert unicodedata.normalize("NFKC", same).casefold().strip() == kernel_account().casefold()
    assert same != kernel_account()
    assert identity.claimed(same, me) == kernel_account()  # the principal's name is recorded, not the typed one
    assert identity.claimed(None, me) == kernel_account()


# ---- the pipeline -------------------------------------------------------------------------------------------
def test_the_pipeline_secret_is_created_once_readable_by_its_owner_alone(hms_home):
    value = identity.pipeline_secret()
    path = hms_home / "pipeline.secret"
    assert identity.secret_file() == path and path.read_text().strip() == value and len(value) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert identity.pipeline_secret() == value  # the same secret from then on
    assert identity.pipeline_env("run-7") == {identity.SECRET_ENV: value, "HMS_RUN_ID": "run-7"}
    assert identity.pipeline_env() == {identity.SECRET_ENV: value}


def test_the_matching_secret_makes_the_pipeline_the_principal_for_hms_run_id(monkeypatch):
    monkeypatch.setenv(identity.SECRET_ENV, identity.pipeline_secret())
    monkeypatch.setenv("HMS_RUN_ID", "bundle-0123456789ab")
    me = identity.current()
    assert me == Principal.pipeline("bundle-0123456789ab") and me.is_pipeline and me.name == identity.PIPELINE_NAME
    assert me.describe() == "airflow for run bundle-0123456789ab"
    monkeypatch.delenv("HMS_RUN_ID")
    assert identity.current() == Principal.pipeline(None)


def test_a_command_with_the_pipeline_env_records_the_pipeline_as_the_actor(monkeypatch, capsys):
    for k, v in identity.pipeline_env("run-1").items():
        monkeypatch.setenv(k, v)
    assert main(["rule", "push", str(WILDFIRE), "--json"]) == 0
    with session_scope(read_only=True) as s:
        pushed = [e for e in audit.entries(s) if e.action == "bundle.recorded"]
    assert [e.actor for e in pushed] == [identity.PIPELINE_NAME]


def test_a_wrong_or_unverifiable_pipeline_secret_is_refused(monkeypatch, hms_home):
    monkeypatch.setenv(identity.SECRET_ENV, "guessed")
    with pytest.raises(BadInput) as e:  # no secret file yet: nothing to match
        identity.current()
    assert e.value.where == str(hms_home / "pipeline.secret") and "cannot be read" in e.value.message
    real = identity.pipeline_secret()
    for wrong in ("guessed", real[:-1], real + "x", ""):
        monkeypatch.setenv(identity.SECRET_ENV, wrong)
        with pytest.raises(BadInput) as e:
            identity.current()
        assert e.value.where == identity.SECRET_ENV and "does not match the pipeline secret" in e.value.message


def test_a_shared_registry_without_the_secret_is_refused_and_the_pipeline_may_write_it(monkeypatch):
    monkeypatch.setenv("HMS_DATABASE_URL", "postgresql+psycopg2://hms@127.0.0.1:1/hms")
    assert identity.shared_registry()
    with pytest.raises(BadInput) as e:
        identity.current()
    assert e.value.where == "identity" and "hms login" in e.value.message
    monkeypatch.setenv(identity.SECRET_ENV, identity.pipeline_secret())
    assert identity.current() == Principal.pipeline(None)
    monkeypatch.setenv("HMS_DATABASE_URL", "sqlite:////tmp/registry.db")
    assert not identity.shared_registry()


def test_an_in_process_principal_wins_over_whatever_the_environment_says(monkeypatch):
    monkeypatch.setenv("HMS_ACTOR", "mallory")
    monkeypatch.setenv(identity.SECRET_ENV, "wrong")
    monkeypatch.setenv("HMS_DATABASE_URL", "postgresql+psycopg2://hms@127.0.0.1:1/hms")
    with identity.acting_as(Principal.pipeline("run-9")):
        assert identity.current() == Principal.pipeline("run-9")
        with identity.acting_as(Principal.person("alice")):
            assert identity.current() == Principal.person("alice")
        assert identity.current() == Principal.pipeline("run-9")
    with pytest.raises(BadInput, match="HMS_ACTOR"):  # outside it the environment is judged again
        identity.current()


# ---- one account, one approval ------------------------------------------------------------------------------
def test_one_os_account_gives_one_approval_whatever_roles_it_holds(capsys):
    cfg = pin_config(users=users_with_os_account("legal", "budget"))
    b = record(variant(3))  # recorded by "tester": the OS account did not push it
    me = identity.os_account()
    assert main(["rule", "review", f"{PID}@3", "--role", "legal", "--approve"]) == 0
    assert f"[review] ✅ {me} (legal) approved {PID} v3" in capsys.readouterr().out
    for argv in (["--role", "budget"], [], ["--role", "budget", "--user", f" {me.upper()} "]):
        assert main(["rule", "review", f"{PID}@3", *argv, "--approve"]) == 2, argv
        assert f"{me} already recorded 'approve' for this bundle; decisions are final" in capsys.readouterr().err
    assert main(["rule", "review", f"{PID}@3", "--role", "budget", "--user", "bob", "--approve"]) == 2
    assert "'bob' is not who is acting" in capsys.readouterr().err
    with session_scope(read_only=True) as s:
        st = deployments.approval_status(s, b, cfg)
    assert not st.satisfied and st.approvers == [(me, "legal")]
    assert st.still_needed == 1 and st.missing_roles == ["budget"]


def test_the_os_account_that_pushed_a_bundle_or_wrote_the_protocol_cannot_review_it(capsys, tmp_path):
    pin_config(users=users_with_os_account("legal", "budget"))
    me = identity.os_account()
    assert main(["rule", "push", str(WILDFIRE)]) == 0
    before = audit_count()
    assert main(["rule", "review", f"{PID}@3", "--role", "legal", "--approve"]) == 2
    assert f"{me} pushed this bundle and cannot review it" in capsys.readouterr().err
    data = protocol.load(WILDFIRE).data
    data["metadata"].update(id="written-by-me", author=me.upper())
    record(protocol.from_data(data, "written-by-me"))
    assert main(["rule", "review", "written-by-me@3", "--role", "legal", "--approve"]) == 2
    assert f"{me} is the author of this protocol and cannot review it" in capsys.readouterr().err
    assert audit_count() == before + 1  # the second bundle's record; no review
