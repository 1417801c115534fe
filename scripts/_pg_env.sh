# Shared by backup.sh and restore.sh (sourced): the database URL and PostgreSQL's client tools.
# The URL: $DATABASE_URL, else the private cluster's (started if needed), as manage.py does.
# The tools: $PG_BIN, else the folder localdb uses (Debian's versioned one: pg_dump must be at
# least the server's version), else PATH.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
if [ -z "${DATABASE_URL:-}" ]; then
    DATABASE_URL="$(cd "$ROOT" && "$PYTHON" -m supportanalytics.localdb start | tail -1)"
fi
if [ -z "${PG_BIN:-}" ]; then
    PG_BIN="$(cd "$ROOT" && "$PYTHON" -c 'from supportanalytics import localdb; print(localdb.find_bindir() or "")' 2>/dev/null || true)"
fi
pg_tool() {
    if [ -n "${PG_BIN:-}" ] && [ -x "$PG_BIN/$1" ]; then echo "$PG_BIN/$1"; else command -v "$1"; fi
}
