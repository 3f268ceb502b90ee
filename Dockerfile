# The Airflow image this package runs on in docker-compose: the official image at the locked Airflow
# version with the package INSTALLED, as any deployment that follows the README's "Add it to your Airflow"
# has it: the wheel built from this checkout (`uv build`), so its `airflow.plugins` entry point (the
# run-notes listener) loads in the scheduler like everything else. Beside it, the package's dependencies
# at their uv.lock versions (the HTTP provider; zstandard, which the SQLite era reads OpenClaw's compressed
# rows with). Only the DAG file comes from outside, mounted from dags/; nothing of plugins/ is mounted.
# edge3 is the package's optional `edge` extra, for the compose `edge` profile's Edge worker.
# tests/integrity/test_compose.py holds these pins to pyproject.toml and uv.lock, and builds the wheel from
# exactly the files the first stage copies.
ARG AIRFLOW_VERSION=3.3.2

# 1. The wheel, built from the checkout with the uv the project uses.
FROM apache/airflow:${AIRFLOW_VERSION} AS wheel
RUN pip install --no-cache-dir "uv==0.13.10"
COPY --chown=airflow:0 pyproject.toml README.md /home/airflow/src/
COPY --chown=airflow:0 plugins/openclaw_nexus /home/airflow/src/plugins/openclaw_nexus
RUN uv build --wheel --out-dir /home/airflow/dist /home/airflow/src

# 2. The image: the official one plus the wheel.
FROM apache/airflow:${AIRFLOW_VERSION}
ARG AIRFLOW_VERSION
COPY --from=wheel /home/airflow/dist/ /tmp/session-upload/
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" "apache-airflow-providers-http==6.3.0" \
    "zstandard==0.25.0" "apache-airflow-providers-edge3==5.1.0" /tmp/session-upload/session_upload-*.whl
