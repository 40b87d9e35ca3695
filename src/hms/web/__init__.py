"""The clerk review page, the ops view and their REST API, as an auth-agnostic FastAPI app (``create_app``).

Hosts supply "who is calling"; the Airflow plugin mounts it under ``/hms`` with Airflow's own tokens.
"""

from hms.web.app import create_app
from hms.web.errors import WebError

__all__ = ["WebError", "create_app"]
