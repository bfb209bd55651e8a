"""A cheaper PBKDF2 for the test processes (Django's advice for test speed: a user costs ~0.2 s to
hash at the production iteration count, and the suite makes thousands)."""

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class FastPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    # Same algorithm name: a hash made here records its iteration count, so the stack's own processes
    # (gunicorn, Celery), which run the production settings, verify it too.
    iterations = 1000
