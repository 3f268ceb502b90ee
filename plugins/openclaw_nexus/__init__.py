"""session-upload: upload completed OpenClaw agent sessions to Nexus from Apache Airflow 3."""

# The distribution's version (pyproject.toml reads it from here); shown in each DAG's docs and tags.
__version__ = "0.1.0"
