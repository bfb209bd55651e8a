import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

from webapp.keepalive import DrainUnreadBody  # noqa: E402 (needs the settings module set)

application = DrainUnreadBody(get_wsgi_application())
