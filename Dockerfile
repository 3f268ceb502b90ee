# The Airflow image this package runs on in docker-compose: the official image at the locked Airflow
# version, plus the package's dependencies Airflow does not bring, at their uv.lock versions (the HTTP
# provider; zstandard, which the SQLite era reads OpenClaw's compressed rows with). dags/ and plugins/ are
# mounted, not copied. tests/integrity/test_compose.py holds these pins to pyproject.toml and uv.lock.
ARG AIRFLOW_VERSION=3.3.2
FROM apache/airflow:${AIRFLOW_VERSION}
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" "apache-airflow-providers-http==6.3.0" \
    "zstandard==0.25.0"
