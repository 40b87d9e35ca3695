"""The AirflowPlugin: the HMS clerk page, ops view and review REST API inside Airflow's API server.

Everything is the core's ``hms.web`` app mounted at ``/hms``; this file only supplies who is calling
(web_auth: Airflow's JWT, as Bearer header or the UI's cookie), two entries in the UI's navigation
that show the pages in an iframe, the listener that aborts a policy run marked failed, and a root middleware
that gives a form-triggered run of a picked bundle an id naming it (run_ids.py: the one request of Airflow's
own API it touches, and only to fill in a missing run id). Reserved prefixes (/api/v2, /ui, /auth, …) are
otherwise avoided by design.
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

from hms.web import create_app
from hms_operators import run_listener
from hms_operators.run_ids import BundleRunIds
from hms_operators.run_links import AirflowRunLinks
from hms_operators.web_auth import airflow_user

URL_PREFIX = "/hms"


class HmsReviewPlugin(AirflowPlugin):
    name = "hms_reviews"
    # A policy run marked failed (UI / REST) or failing on its own is aborted in the core: rolled back, its
    # pending activations cancelled (run_listener.py says what Airflow 3.3 calls, and when).
    listeners: ClassVar[list[Any]] = [run_listener]
    # A run triggered from the form with a pushed bundle picked gets an id naming it (run_ids.py).
    fastapi_root_middlewares: ClassVar[list[dict[str, Any]]] = [
        {"middleware": BundleRunIds, "args": [], "kwargs": {}, "name": "hms: a picked bundle names its run"}
    ]
    fastapi_apps: ClassVar[list[dict[str, Any]]] = [
        {"app": create_app(airflow_user, login_url="/", links=AirflowRunLinks()), "url_prefix": URL_PREFIX,
         "name": "HMS policy reviews"}
    ]
    # nav_top_level: an entry of its own in the sidebar (the UI reads it; the response model allows extras),
    # instead of one more item behind "Plugins" — clerks should not have to hunt for their page. Short names:
    # the sidebar cuts labels at about ten characters; each name is also its page's <title> and <h1>
    # (hms.web.pages.PAGE_NAMES). Two pictures (a scale, a rocket), each with a light stroke for the dark theme.
    external_views: ClassVar[list[dict[str, Any]]] = [
        {"name": "Reviews", "href": f"{URL_PREFIX}/reviews", "url_route": "hms-reviews", "destination": "nav",
         "nav_top_level": True, "icon": f"{URL_PREFIX}/static/reviews.svg",
         "icon_dark_mode": f"{URL_PREFIX}/static/reviews-dark.svg"},
        {"name": "Deploys", "href": f"{URL_PREFIX}/ops", "url_route": "hms-ops", "destination": "nav",
         "nav_top_level": True, "icon": f"{URL_PREFIX}/static/deploys.svg",
         "icon_dark_mode": f"{URL_PREFIX}/static/deploys-dark.svg"},
    ]
