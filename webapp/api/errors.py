"""The API's exception handler: DRF's, plus BadParam (webapp/params.py) as a 400 {"name": ["message"]}."""

from rest_framework.exceptions import ValidationError
from rest_framework.views import exception_handler

from webapp.params import BadParam


def handler(exc, context):
    if isinstance(exc, BadParam):
        exc = ValidationError({exc.name: [exc.message]})
    return exception_handler(exc, context)
