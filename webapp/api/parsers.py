"""The API's JSON parser: DRF's, refusing bodies nested too deeply with a 400 (DRF's own lets the
decoder's RecursionError through as a 500, and a body just shallow enough to decode can still exhaust
the stack of whatever walks it later)."""

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser as DRFJSONParser

MAX_DEPTH = 32  # far deeper than any request of the API (a sweep's space is 4 levels)
TOO_DEEP = f"JSON parse error - nested deeper than {MAX_DEPTH} levels."


def _depth_ok(data) -> bool:
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > MAX_DEPTH:
            return False
        stack.extend((child, depth + 1) for child in children)
    return True


class JSONParser(DRFJSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(TOO_DEEP) from None
        if not _depth_ok(data):
            raise ParseError(TOO_DEEP)
        return data
