#!/bin/sh
# Wait for the database (when one is configured), then run the given command.
set -e
if [ -n "${DATABASE_URL:-}" ]; then
  python - <<'PY'
import os, sys, time
import environ, psycopg2
cfg = environ.Env.db_url_config(os.environ["DATABASE_URL"])
for i in range(60):
    try:
        psycopg2.connect(dbname=cfg["NAME"], user=cfg["USER"], password=cfg["PASSWORD"], host=cfg["HOST"], port=cfg["PORT"] or 5432).close()
        sys.exit(0)
    except psycopg2.OperationalError:
        time.sleep(1)
sys.exit("database did not come up in 60 s")
PY
fi
exec "$@"
