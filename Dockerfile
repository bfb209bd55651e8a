# One image for web, worker and the Spark daemons (pyspark ships the jars).
FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless nodejs npm make procps \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.lock package.json package-lock.json ./
RUN python -m venv /app/.venv && /app/.venv/bin/pip install --no-cache-dir -r requirements.lock \
 && npm ci --no-audit --no-fund
ENV PATH=/app/.venv/bin:$PATH PYTHONUNBUFFERED=1 DJANGO_SETTINGS_MODULE=webapp.settings \
    SPARKDECK_SPARK_PYTHON=/app/.venv/bin/python TF_USE_LEGACY_KERAS=1 \
    SPARK_HOME=/app/.venv/lib/python3.11/site-packages/pyspark
COPY . .
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e . \
 && DJANGO_SECRET_KEY=build python manage.py collectstatic --noinput -v 0
ENTRYPOINT ["/app/docker/entrypoint.sh"]
