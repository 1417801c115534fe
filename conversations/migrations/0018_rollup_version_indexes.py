"""Indexes for the rollup rows of one bot version (the compare of two versions, issue 17).

Built CONCURRENTLY: ingestion goes on while they are built (at 10M conversations the topic
index took 77 s). A concurrent build cannot run in a transaction, hence `atomic = False`.
"""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("conversations", "0017_annotations"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="conversationrollup",
            index=models.Index(
                condition=models.Q(bot_version__isnull=False),
                fields=["span", "bot_version", "start"],
                name="conv_rollup_version_idx",
            ),
        ),
        AddIndexConcurrently(
            model_name="topicrollup",
            index=models.Index(
                condition=models.Q(bot_version__isnull=False, escalation_reason__isnull=True),
                fields=["span", "bot_version", "start"],
                name="topic_rollup_version_idx",
            ),
        ),
    ]
