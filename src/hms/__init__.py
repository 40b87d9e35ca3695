"""HMS Policy Deployment Pipeline: the core. Plain Python; nothing here imports Airflow."""

__version__ = "0.1.0"
