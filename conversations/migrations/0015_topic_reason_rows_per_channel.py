# Per topic, a reason's rollup rows are kept per channel × version only: a read for all channels
# sums them (rollups.SPREAD). The rows for all channels go, then a constraint keeps them out.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("conversations", "0014_rollup_indexes_for_reasons"),
    ]

    operations = [
        migrations.RunSQL(
            "DELETE FROM conversations_topicrollup WHERE escalation_reason IS NOT NULL AND channel IS NULL",
            reverse_sql=migrations.RunSQL.noop,  # going back takes `manage.py rebuild_rollups`
        ),
        migrations.AddConstraint(
            model_name="topicrollup",
            constraint=models.CheckConstraint(
                condition=models.Q(("escalation_reason", None), ("channel__isnull", False), _connector="OR"),
                name="topic_rollup_reason_per_channel",
            ),
        ),
    ]
