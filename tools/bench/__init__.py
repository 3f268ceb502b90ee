"""The benchmarks: ``python -m tools.bench <section>`` (sections in :mod:`tools.bench.cli`), the
completion → Nexus latency benchmark (``latency``), and ``dags/``, the no-op DAG of the package's shape
(Airflow's floor)."""
