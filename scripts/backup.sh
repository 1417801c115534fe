#!/usr/bin/env bash
# Back up the database: scripts/backup.sh FILE  (PostgreSQL's custom format, compressed).
# Uses $DATABASE_URL, else the private cluster in var/. Restore with scripts/restore.sh FILE.
set -euo pipefail
if [ $# -ne 1 ]; then
    echo "usage: $0 FILE   (e.g. $0 backups/supportanalytics-\$(date -u +%Y%m%dT%H%M%SZ).dump)" >&2
    exit 2
fi
source "$(dirname "${BASH_SOURCE[0]}")/_pg_env.sh"
target="$1"
# Written beside the target, then renamed: a failed dump never leaves a truncated FILE behind.
partial="$target.partial"
trap 'rm -f "$partial"' EXIT
"$(pg_tool pg_dump)" --format=custom --no-owner --no-privileges --dbname="$DATABASE_URL" --file="$partial"
mv "$partial" "$target"
trap - EXIT
echo "backup written: $target ($(du -h "$target" | cut -f1))"
