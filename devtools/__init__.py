"""Development tooling: a local Airflow stack (``make up``, the tests, ``make demo``, ``make bench``) and the
``dag.test`` runner ``hms ci run`` falls back on when no Airflow API server answers.

Not under ``plugins/``: Airflow imports every ``.py`` in its plugins folder into every component
(scheduler, api-server, triggerer, dag-processor), so a supervisor of Airflow processes living there
would be loaded by the processes it supervises. The plugin stays a thin adapter; the image copies
``plugins/`` and not this package (nothing in it runs there).

Run from the repository root with the plugins on the path, e.g.
``PYTHONPATH=plugins:. python -m devtools.airflow_stack up``.
"""
