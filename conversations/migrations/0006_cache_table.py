"""The database cache's table (settings.CACHES), which the API throttle counts in.

`createcachetable` is not a migration by itself; running it here means every `migrate`
(make run, make test's test database, production set-up) creates it. It does nothing when
the table exists already, and takes the table's name from settings.CACHES.
"""

from django.core.management import call_command
from django.db import migrations


def create_cache_table(apps, schema_editor):
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0005_session_id_collation_c"),
    ]

    # Reversing leaves the table: it holds nothing but expiring counters.
    operations = [migrations.RunPython(create_cache_table, migrations.RunPython.noop)]
