from django.core.management.base import BaseCommand, CommandError

from conversations import digests
from conversations.models import DigestFrequency


class Command(BaseCommand):
    help = (
        "Send the daily digest (the day before) or the weekly one (the Monday-to-Sunday week "
        "before) to the active subscribers who have not had it yet. Safe to run again: each "
        "subscriber gets a period's digest once. Exits 1 when a digest failed (logged; run it "
        "again to send those)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--frequency", required=True, choices=DigestFrequency.values)

    def handle(self, *args, frequency: str, **options):
        result = digests.send_digests(frequency=frequency)
        covered = result.digest_period
        self.stdout.write(
            f"The {covered.frequency.value} digest for {covered.label}: sent to {result.sent}, "
            f"already sent to {result.skipped}, failed for {result.failed}."
        )
        if result.failed:
            # Non-zero so that cron or the scheduler notices; a second run sends only those.
            raise CommandError(f"{result.failed} digest(s) failed (see the log); run it again to send them.")
