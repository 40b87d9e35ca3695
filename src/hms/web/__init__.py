"""The clerk review page, the ops view and their REST API, as an auth-agnostic FastAPI app (``create_app``).

Hosts supply "who is calling"; the Airflow plugin mounts it under ``/hms`` with Airflow's own tokens.
``create_app`` is imported on first use: the API's routers import ``hms.web.reviews`` and
``hms.web.errors``, and ``hms.web.app`` imports the routers — an eager import here would be a cycle.
"""

from typing import Any

from hms.web.errors import WebError

__all__ = ["WebError", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from hms.web.app import create_app

        return create_app
    raise AttributeError(name)
