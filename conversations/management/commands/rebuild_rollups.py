import time

from django.core.management.base import BaseCommand
from django.db import transaction

from conversations import rollups


class Command(BaseCommand):
    help = (
        "Recompute the hourly and daily rollups from the stored conversations. Writers wait "
        "while it runs (one transaction); readers see the old rollups until it commits."
    )

    def handle(self, *args, **options):
        started = time.monotonic()
        with transaction.atomic():
            counts = rollups.rebuild()
        self.stdout.write(
            f"Rebuilt {counts['conversation_rollups']:,} conversation rollup rows and "
            f"{counts['topic_rollups']:,} topic rollup rows in {time.monotonic() - started:.1f} s."
        )
