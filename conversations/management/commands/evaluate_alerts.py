"""One pass of the alert rules, notifications included: for cron and tests (the worker runs
the same pass every minute)."""

from django.core.management.base import BaseCommand

from conversations.alert_evaluation import evaluate_alerts


class Command(BaseCommand):
    help = "Evaluate every enabled alert rule once and deliver the notifications (no worker needed)."

    def handle(self, *args, **options):
        result = evaluate_alerts()
        states = ", ".join(f"{event.rule_name}: {event.state}" for event in result.events) or "no change"
        self.stdout.write(
            f"Evaluated {result.rules} rule(s): {states}. "
            f"Deliveries: {result.delivered} sent, {result.failed} failed."
            + (f" {result.errors} rule(s) could not be evaluated (see the log)." if result.errors else "")
        )
