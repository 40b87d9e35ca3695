"""The Airflow intake DAG: one pipeline run per new bundle of any protocol (hms_operators.dag_file)."""

from hms_operators.dag_file import intake_dag

hms_intake = intake_dag(__file__)
