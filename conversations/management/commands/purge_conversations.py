import time
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from conversations import retention


class Command(BaseCommand):
    help = (
        "Data retention: delete the conversations that ended more than DAYS days ago, and their "
        "contributions to the rollups, in batches of short transactions (safe while the app runs)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            type=int,
            required=True,
            metavar="DAYS",
            help="Delete conversations whose timestamp is before now − DAYS days (at least 1).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Only print how many conversations would be deleted."
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=retention.DEFAULT_BATCH_SIZE,
            help=f"Conversations per transaction (default {retention.DEFAULT_BATCH_SIZE:,}).",
        )

    def handle(self, *args, older_than: int, dry_run: bool, batch_size: int, **options):
        if older_than < 1:
            raise CommandError(
                f"--older-than must be at least 1 day, not {older_than}: refusing to delete "
                "conversations from the last 24 hours."
            )
        if batch_size < 1:
            raise CommandError(f"--batch-size must be at least 1, not {batch_size}.")
        cutoff = timezone.now() - timedelta(days=older_than)
        described = f"older than {older_than} days (before {cutoff:%Y-%m-%d %H:%M:%S} UTC)"
        total = retention.expired(cutoff=cutoff).count()
        if dry_run:
            self.stdout.write(f"Would delete {total:,} conversations {described}. Nothing was deleted.")
            return
        if total == 0:
            self.stdout.write(f"No conversations {described}.")
            return

        started = time.monotonic()
        deleted = rollup_rows = batches = 0
        while (batch := retention.purge_batch(cutoff=cutoff, limit=batch_size)) is not None:
            deleted += batch.conversations
            rollup_rows += batch.rollup_rows
            batches += 1
            # One line per batch: readable in a cron log, not only on a terminal. Conversations
            # posted meanwhile with old timestamps are deleted too, so the count may pass total.
            self.stdout.write(
                f"  deleted {deleted:,} of {total:,} conversations ({min(deleted / total, 1):.0%})"
            )
        self.stdout.write(
            f"Deleted {deleted:,} conversations {described} in {batches:,} batches "
            f"({time.monotonic() - started:.1f} s); removed {rollup_rows:,} emptied rollup rows."
        )
