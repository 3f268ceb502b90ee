# The Airflow image this package runs on in docker-compose: the official image at the locked Airflow
# version, plus the HTTP provider version from uv.lock. dags/ and plugins/ are mounted, not copied.
ARG AIRFLOW_VERSION=3.3.2
FROM apache/airflow:${AIRFLOW_VERSION}
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" "apache-airflow-providers-http==6.3.0"
