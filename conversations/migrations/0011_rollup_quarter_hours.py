"""Quarter-hour rollup rows (per topic: for all channels and versions only), and their first
build.

A database with conversations and no quarter-hour rows has every rollup rebuilt from its
conversations (rollups.rebuild, as `manage.py rebuild_rollups`: about 3 minutes for 10
million conversations on 2 cores), in this migration's transaction. Rows that an older
server writes while this runs are in the rebuild if they commit before it reads them;
stop the writers while migrating, or run `manage.py rebuild_rollups` after the new code
serves.
"""

from django.db import migrations, models


def build_quarter_hours(apps, schema_editor):
    from conversations import rollups

    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT FROM conversations_conversation)"
            " AND NOT EXISTS (SELECT FROM conversations_conversationrollup WHERE span = 'q')"
        )
        [(missing,)] = cursor.fetchall()
    if missing:
        rollups.rebuild()


class Migration(migrations.Migration):

    dependencies = [
        ('conversations', '0010_rollup_deltas'),
    ]

    operations = [
        migrations.AlterField(
            model_name='conversationrollup',
            name='span',
            field=models.CharField(choices=[('q', 'quarter hour'), ('h', 'hour'), ('d', 'day')], max_length=1),
        ),
        migrations.AlterField(
            model_name='conversationrollup',
            name='start',
            field=models.DateTimeField(help_text='Start of the UTC quarter hour, hour or day.'),
        ),
        migrations.AlterField(
            model_name='topicrollup',
            name='span',
            field=models.CharField(choices=[('q', 'quarter hour'), ('h', 'hour'), ('d', 'day')], max_length=1),
        ),
        migrations.AlterField(
            model_name='topicrollup',
            name='start',
            field=models.DateTimeField(help_text='Start of the UTC quarter hour, hour or day.'),
        ),
        migrations.AddConstraint(
            model_name='topicrollup',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('span', 'q'), _negated=True), models.Q(('bot_version', None), ('channel', None)), _connector='OR'), name='topic_rollup_quarter_all_only'),
        ),
        migrations.RunPython(build_quarter_hours, migrations.RunPython.noop),
    ]
