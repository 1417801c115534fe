from django.core.management.base import BaseCommand, CommandError

from conversations.client_rules import RULES_FILE, rules_text


class Command(BaseCommand):
    help = (
        "Write the bot-side client's rules (client/src/supportanalytics_client/rules.json) from the "
        "server's ingest rules and OpenAPI document; --check only says whether it is up to date."
    )

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true", help="Exit 1 if the file differs; write nothing.")

    def handle(self, *args, check: bool, **options):
        text = rules_text()
        current = RULES_FILE.read_text() if RULES_FILE.exists() else None
        if check:
            if current != text:
                raise CommandError(f"{RULES_FILE} is out of date: run `python manage.py client_rules`.")
            self.stdout.write(f"{RULES_FILE} is up to date.")
            return
        RULES_FILE.parent.mkdir(parents=True, exist_ok=True)
        RULES_FILE.write_text(text)
        self.stdout.write(f"Wrote {RULES_FILE}" + (" (unchanged)." if current == text else "."))
