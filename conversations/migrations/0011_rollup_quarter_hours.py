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
        with schema_editor.connection.cursor() as cursor:
            # The new rows' deferred foreign-key checks now: ALTER TABLE (the constraint
            # below) refuses a table with pending trigger events.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def remove_quarter_hours(apps, schema_editor):
    """Back to 0010: the older code keeps no quarter-hour rows, so none may stay behind to be
    read, out of date, once this migration runs again (it rebuilds only without any)."""
    with schema_editor.connection.cursor() as cursor:
        for table in ("conversations_conversationrollup", "conversations_topicrollup"):
            cursor.execute(f"DELETE FROM {table} WHERE span = 'q'")


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
        # Before the constraint: adding it locks the topic rollups against reads until the
        # migration commits, which would then last the whole rebuild.
        migrations.RunPython(build_quarter_hours, remove_quarter_hours),
        migrations.AddConstraint(
            model_name='topicrollup',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('span', 'q'), _negated=True), models.Q(('bot_version', None), ('channel', None)), _connector='OR'), name='topic_rollup_quarter_all_only'),
        ),
    ]
