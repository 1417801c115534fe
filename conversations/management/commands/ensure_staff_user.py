import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

USERNAME = "admin"


class Command(BaseCommand):
    help = (
        "Make sure a staff login exists. The first time, create the superuser 'admin' with a random "
        "password, print both and keep them in var/staff-login.txt (git-ignored)."
    )

    def handle(self, *args, **options):
        User = get_user_model()
        credentials = settings.BASE_DIR / "var" / "staff-login.txt"
        if User.objects.filter(is_staff=True, is_active=True).exists():
            where = f" (password in {credentials})" if credentials.exists() else ""
            self.stdout.write(f"Staff login exists{where}.")
            return
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(username=USERNAME, email="", password=password)
        credentials.parent.mkdir(parents=True, exist_ok=True)
        credentials.write_text(f"username: {USERNAME}\npassword: {password}\n")
        credentials.chmod(0o600)
        self.stdout.write(
            self.style.SUCCESS(f"Created staff login -> username: {USERNAME}  password: {password}")
            + f"\n(also saved in {credentials}; change it in the admin)"
        )
