"""Path converters for the registry's URLs (pages and API): a model's name, an alias, a version number.
Anything else does not match the route (404), and the API schema carries the same patterns."""

from django.urls import register_converter

from webapp import params

from .models import ALIAS_PATTERN, NAME_PATTERN


class ModelNameConverter:
    regex = NAME_PATTERN

    def to_python(self, value):
        return value

    def to_url(self, value):
        return value


class AliasConverter(ModelNameConverter):
    regex = ALIAS_PATTERN


class VersionConverter:
    regex = "[0-9]{1,10}"

    def to_python(self, value):
        number = int(value)
        if not 1 <= number <= params.MAX_INT32:
            raise ValueError("not a version number")  # the route does not match: 404
        return number

    def to_url(self, value):
        return str(value)


register_converter(ModelNameConverter, "modelname")
register_converter(AliasConverter, "aliasname")
register_converter(VersionConverter, "modelversion")
