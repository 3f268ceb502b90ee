"""Runs Airflow for the demo, the tests and the benchmarks, each in a throwaway ``AIRFLOW_HOME``.

- ``sandbox``: an ``AIRFLOW_HOME`` with a migrated SQLite metadata DB, for ``airflow dags test`` runs.
- ``airflow_stack``: the embedded default (api-server, scheduler, dag-processor, triggerer) on loopback.
- ``celery_stack``: the same on PostgreSQL + Celery + Redis, with workers per queue.
- ``adoption``: the distribution built from the checkout and installed into other Airflow releases.
"""
