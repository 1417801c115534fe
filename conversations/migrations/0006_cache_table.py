"""The database cache's table (settings.CACHES), which the API throttle counted in until 0007.

`createcachetable` is not a migration by itself; running it here means every `migrate`
(make run, make test's test database, production set-up) creates it. It does nothing when
the table exists already, and takes the table's name from settings.CACHES.

The table is UNLOGGED: its rows are expiring counters, not data, so they need no WAL. Each
throttle update is its own small transaction, and a logged one waits for a WAL flush at
commit (measured: 2.4 ms per API request here, 1.0 ms unlogged). PostgreSQL empties an
unlogged table after a crash, and standbys do not have it: counts start again, which is fine.
"""

from django.conf import settings
from django.core.management import call_command
from django.db import migrations


def create_cache_table(apps, schema_editor):
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)
    for cache in settings.CACHES.values():
        if cache["BACKEND"] == "django.core.cache.backends.db.DatabaseCache":
            table = schema_editor.quote_name(cache["LOCATION"])
            schema_editor.execute(f"ALTER TABLE {table} SET UNLOGGED")


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0005_session_id_collation_c"),
    ]

    # Reversing leaves the table: it holds nothing but expiring counters.
    operations = [migrations.RunPython(create_cache_table, migrations.RunPython.noop)]
