from django.core.management.base import BaseCommand, CommandError

from conversations.models import ApiKey


class Command(BaseCommand):
    help = "Create an API key. The key is printed once, alone on the last line; only its hash is stored."

    def add_arguments(self, parser):
        parser.add_argument(
            "name",
            help="A label for the key, e.g. the bot's name (at most 50 characters).",
        )
        parser.add_argument(
            "--scope",
            choices=ApiKey.Scope.values,
            default=ApiKey.Scope.INGEST,
            help="ingest: post conversations; read: read analytics; all: both. Default: ingest.",
        )

    def handle(self, *args, name: str, scope: str, **options):
        if not name.strip() or len(name) > 50:
            raise CommandError("NAME must be 1 to 50 characters.")
        api_key, key = ApiKey.objects.create_key(name=name, scope=scope)
        self.stdout.write(f"Created API key {api_key.prefix}… '{name}' with scope '{scope}'. Store it now:")
        self.stdout.write(key)
