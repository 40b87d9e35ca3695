"""Airflow adapter for the HMS pipeline: operators, sensors, triggers and the AirflowPlugin.

Thin on purpose: every decision is made by the core (``hms``); this package only
maps pipeline steps onto Airflow's task model.
"""
