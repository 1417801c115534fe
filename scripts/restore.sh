#!/usr/bin/env bash
# Restore a backup made by scripts/backup.sh: scripts/restore.sh FILE
# Into $DATABASE_URL (else the private cluster in var/). Objects of the backup that exist are
# dropped and created again (--clean --if-exists); other tables are left alone. Stop the app
# (or at least ingestion) first: a restore replaces the conversations and their rollups.
set -euo pipefail
if [ $# -ne 1 ]; then
    echo "usage: $0 FILE" >&2
    exit 2
fi
source "$(dirname "${BASH_SOURCE[0]}")/_pg_env.sh"
"$(pg_tool pg_restore)" --clean --if-exists --no-owner --no-privileges --single-transaction \
    --exit-on-error --dbname="$DATABASE_URL" "$1"
echo "restored: $1"
