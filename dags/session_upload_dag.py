"""The Airflow DAG file of session_upload: put it in your DAGs folder, next to nothing else of this package.

It builds the DAGs from the installed `session-upload` distribution (the `openclaw_nexus` package): the
DAG `session_upload`, or with `$SESSION_UPLOAD_FLEET` one `session_upload_<host>` per host. What the DAG
does, its tasks and Params: the DAG's docs in the UI (`openclaw_nexus/dag.py`) and the README.
"""

from openclaw_nexus.dag import build_dags

build_dags()
