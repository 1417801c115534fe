"""The API throttle's counters (conversations.throttling), in a table of their own.

Before, the throttle kept its counts in Django's database cache: a get and a set, six
statements and a transaction per API request. One upsert on this table does the same in a
single statement, atomically. UNLOGGED like the cache table (0006): counters need no WAL.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0006_cache_table"),
    ]

    operations = [
        migrations.CreateModel(
            name="RateLimitCounter",
            fields=[
                ("key", models.CharField(max_length=200, primary_key=True, serialize=False)),
                ("window_start", models.DateTimeField()),
                ("count", models.IntegerField()),
            ],
        ),
        migrations.RunSQL(
            "ALTER TABLE conversations_ratelimitcounter SET UNLOGGED",
            "ALTER TABLE conversations_ratelimitcounter SET LOGGED",
        ),
    ]
