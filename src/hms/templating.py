"""The one Jinja2 environment of the report and the web pages: autoescape on, undefined names fail.

Presentation lives in ``src/hms/templates`` (HTML and SVG) and ``src/hms/static`` (the shared stylesheet);
Python hands the templates typed view data. Autoescape is on for every ``.html`` template, so a protocol
title or a clerk's comment that carries ``<script>`` stays text without anyone remembering to escape it;
``StrictUndefined`` turns a misspelt field into an error in the tests instead of an empty cell on a page.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("hms", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html", "svg"), default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = lambda v, digits=1: f"{v:.{digits}f}"
    return env


def render(name: str, **data: Any) -> str:
    """``name`` (a path under templates/) rendered with ``data``."""
    return environment().get_template(name).render(**data)


def static_text(name: str) -> str:
    """A file of ``src/hms/static`` (the shared stylesheet): served by the web app, inlined by the report."""
    return resources.files("hms").joinpath("static", name).read_text(encoding="utf-8")
