"""ConversationRollupDelta, TopicRollupDelta: rollup rows that writes of a few conversations
append, until folded into the rollups (conversations.rollups.fold).

Also builds the rollups of a database that has none or only part of them (see
build_rollups): here, in the latest migration whose schema the live rebuild code needs.
"""

import django.contrib.postgres.fields
import django.db.models.deletion
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
            name='ConversationRollupDelta',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('conversations', models.IntegerField(default=0)),
                ('ai_resolved', models.IntegerField(default=0)),
                ('turns_sum', models.BigIntegerField(default=0)),
                ('csat_1', models.IntegerField(default=0)),
                ('csat_2', models.IntegerField(default=0)),
                ('csat_3', models.IntegerField(default=0)),
                ('csat_4', models.IntegerField(default=0)),
                ('csat_5', models.IntegerField(default=0)),
                ('csat_sum_ai_resolved', models.BigIntegerField(default=0)),
                ('csat_count_ai_resolved', models.IntegerField(default=0)),
                ('ai_cost_sum', models.DecimalField(decimal_places=6, default=0, max_digits=24)),
                ('ai_cost_missing', models.IntegerField(default=0)),
                ('response_ms_sum', models.DecimalField(decimal_places=3, default=0, max_digits=30)),
                ('response_ms_count', models.IntegerField(default=0)),
                ('response_ms_histogram', django.contrib.postgres.fields.ArrayField(base_field=models.IntegerField(), size=None)),
                ('span', models.CharField(choices=[('h', 'hour'), ('d', 'day')], max_length=1)),
                ('start', models.DateTimeField()),
                ('channel', models.CharField(max_length=64, null=True)),
                ('bot_version', models.CharField(max_length=64, null=True)),
            ],
            options={
                'abstract': False,
            },
        ),
        migrations.CreateModel(
            name='TopicRollupDelta',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('conversations', models.IntegerField(default=0)),
                ('ai_resolved', models.IntegerField(default=0)),
                ('turns_sum', models.BigIntegerField(default=0)),
                ('csat_1', models.IntegerField(default=0)),
                ('csat_2', models.IntegerField(default=0)),
                ('csat_3', models.IntegerField(default=0)),
                ('csat_4', models.IntegerField(default=0)),
                ('csat_5', models.IntegerField(default=0)),
                ('csat_sum_ai_resolved', models.BigIntegerField(default=0)),
                ('csat_count_ai_resolved', models.IntegerField(default=0)),
                ('ai_cost_sum', models.DecimalField(decimal_places=6, default=0, max_digits=24)),
                ('ai_cost_missing', models.IntegerField(default=0)),
                ('response_ms_sum', models.DecimalField(decimal_places=3, default=0, max_digits=30)),
                ('response_ms_count', models.IntegerField(default=0)),
                ('response_ms_histogram', django.contrib.postgres.fields.ArrayField(base_field=models.IntegerField(), size=None)),
                ('span', models.CharField(choices=[('h', 'hour'), ('d', 'day')], max_length=1)),
                ('start', models.DateTimeField()),
                ('channel', models.CharField(max_length=64, null=True)),
                ('bot_version', models.CharField(max_length=64, null=True)),
                ('topic', models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.DO_NOTHING, to='conversations.topic')),
            ],
            options={
                'abstract': False,
            },
        ),
        migrations.RunPython(build_rollups, migrations.RunPython.noop),
    ]
