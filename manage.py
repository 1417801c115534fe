#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "supportanalytics.settings")
    if not os.environ.get("DATABASE_URL"):
        # No database configured: use (and start if needed) the private cluster.
        from supportanalytics import localdb

        try:
            localdb.ensure_running()
        except localdb.LocalDatabaseError as error:
            sys.exit(f"error: {error}")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
