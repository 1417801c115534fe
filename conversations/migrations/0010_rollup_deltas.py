"""RollupDelta: the rollup changes of single-conversation writes, until folded in
(conversations.rollups.fold).

Also builds the rollups of a database that has none or only part of them (see
build_rollups): here, in the latest migration whose schema the live rebuild code needs.
"""

import django.contrib.postgres.fields
from django.db import migrations, models


def build_rollups(apps, schema_editor):
    """Build the rollups when they are missing or partial: a database migrated from before
    0003 (0003 and 0004 create the tables empty), or one that 0003 built and that comes here
    without 0004's "all channels and versions" rows. Every database that ran 0004 has them,
    kept right by every write since. (Done by 0008 before the live code needed this table.)"""
    from conversations import rollups

    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT FROM conversations_conversation) AND NOT EXISTS ("
            " SELECT FROM conversations_conversationrollup WHERE channel IS NULL AND bot_version IS NULL)"
        )
        [(missing,)] = cursor.fetchall()
    if missing:
        rollups.rebuild()


class Migration(migrations.Migration):

    dependencies = [
        ('conversations', '0009_rollup_all_channels_indexes'),
    ]

    operations = [
        migrations.CreateModel(
            name='RollupDelta',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('sign', models.SmallIntegerField()),
                ('timestamp', models.DateTimeField()),
                ('channel', models.CharField(max_length=64)),
                ('bot_version', models.CharField(max_length=64)),
                ('resolved_by_ai', models.BooleanField()),
                ('turns', models.IntegerField()),
                ('csat', models.SmallIntegerField(null=True)),
                ('ai_cost', models.DecimalField(decimal_places=6, max_digits=12, null=True)),
                ('avg_response_ms', models.FloatField(null=True)),
                ('response_ms_bucket', models.SmallIntegerField(null=True)),
                ('topic_ids', django.contrib.postgres.fields.ArrayField(base_field=models.BigIntegerField(), size=None)),
            ],
        ),
        migrations.RunPython(build_rollups, migrations.RunPython.noop),
    ]
