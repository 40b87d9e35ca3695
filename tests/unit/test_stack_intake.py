"""`make up` turns the intake on and says so, or fails loudly: a first push must start its pipeline.

Without a real Airflow: the REST calls go to an httpx.MockTransport (injected into hms.airflow_api.AirflowApi,
which the stack's requests go through) and `up` drives a stand-in stack, so what is tested is the logic — the
unpause is retried on a 5xx and read back, the stack reports a refusal as its own error, a stack whose intake
stays paused makes `up` exit 1 with what to do, and pipelines are not paused at creation. A real stack doing
the same is the end of `make up` and of the demo (test_pipeline_real_airflow turns its intake on by
triggering it).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from devtools import airflow_stack as stack
from hms import airflow_api
from hms.airflow_api import AirflowApi
from hms.errors import BadInput


def _airflow(paused_after: bool, statuses: list[int]) -> tuple[AirflowApi, list[str]]:
    """An Airflow API stand-in: PATCH answers ``statuses`` in turn, GET reports ``paused_after``."""
    calls: list[str] = []
    answers = iter(statuses)

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(f"{request.method} {request.url.path}")
        if request.url.path == "/auth/token":
            return httpx.Response(201, json={"access_token": "t"})
        if request.method == "PATCH":
            return httpx.Response(next(answers), json={"dag_id": "hms_intake"})
        return httpx.Response(200, json={"dag_id": "hms_intake", "is_paused": paused_after})

    http = httpx.Client(base_url="http://airflow", transport=httpx.MockTransport(handle))
    return AirflowApi("http://airflow", "admin", "pw", http=http), calls


@pytest.fixture(autouse=True)
def _no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(airflow_api.time, "sleep", lambda s: None)


def test_unpause_retries_a_5xx_and_reads_the_state_back():
    api, calls = _airflow(False, [503, 200])
    api.unpause("hms_intake")
    assert calls == ["PATCH /api/v2/dags/hms_intake", "PATCH /api/v2/dags/hms_intake", "GET /api/v2/dags/hms_intake"]


def test_unpause_fails_loudly_when_airflow_does_not_confirm():
    with pytest.raises(BadInput, match="hms_intake is still paused"):
        _airflow(True, [200])[0].unpause("hms_intake")
    with pytest.raises(BadInput, match="PATCH /api/v2/dags/hms_intake answered 404"):
        _airflow(True, [404])[0].unpause("hms_intake")


def test_the_stack_reports_an_intake_airflow_left_paused_as_its_own_error(monkeypatch, tmp_path):
    api, calls = _airflow(True, [200])
    monkeypatch.setattr(stack, "AirflowApi", lambda *args, **kwargs: api)
    s = stack.AirflowStack(tmp_path, port=18997)
    monkeypatch.setattr(s, "wait_for_dags", lambda *args, **kwargs: None)
    with pytest.raises(stack.StackError, match="hms_intake is still paused after turning it on"):
        s.enable_intake()
    assert calls[0] == "POST /auth/token"  # as a logged-in user


class _Stack:
    """Stands in for AirflowStack in `up`: starts instantly, its intake turns on or not."""

    intake_error: str | None = None
    enabled = False

    def __init__(self, home: Path, port: int | None = None) -> None:
        self.url, self.users, self.env = f"http://127.0.0.1:{port}", {"admin": "pw"}, {"HMS_HOME": str(home)}

    def start(self) -> None:
        pass

    def enable_intake(self) -> None:
        if _Stack.intake_error:
            raise stack.StackError(_Stack.intake_error)
        _Stack.enabled = True


def test_up_turns_the_intake_on_or_exits_1_saying_what_to_do(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(stack, "AirflowStack", _Stack)
    _Stack.intake_error, _Stack.enabled = None, False
    assert stack.main(["up", "--home", str(tmp_path / "a"), "--port", "18999"]) == 0
    assert _Stack.enabled
    assert "intake: on — hms_intake starts a pipeline run for each new bundle" in capsys.readouterr().out
    _Stack.intake_error = "hms_intake is still paused after turning it on (200 …)"
    assert stack.main(["up", "--home", str(tmp_path / "b"), "--port", "18999"]) == 1
    err = capsys.readouterr().err
    assert "intake: ❌ hms_intake is still paused" in err and "turn hms_intake on in the UI" in err


def test_pipeline_dags_are_not_paused_at_creation(tmp_path):
    env = stack.AirflowStack(tmp_path, port=18998).env
    assert env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "False"  # policy_<id>: a trigger runs at once
