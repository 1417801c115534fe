"""Failed-login lockout (django-axes) for the staff login page and the admin's."""

from axes.backends import AxesStandaloneBackend


class LoginAttemptsBackend(AxesStandaloneBackend):
    """axes' lockout check, for web logins only.

    axes refuses `authenticate()` calls without a request; those come from code (a management
    command, the shell, a test), not from a login form anyone could hammer, so they go straight
    to the password check.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)
