"""Airflow pipeline DAGs of the protocol files in shard 2 of include/protocols (hms_operators.dag_file)."""

from hms_operators.dag_file import policy_dags

globals().update(policy_dags(__file__, shard=2))
