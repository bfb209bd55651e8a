"""The API's JSON parser: DRF's, refusing bodies nested too deeply with a 400 (DRF's own lets the
decoder's RecursionError through as a 500; the depth rule is webapp/params.py's)."""

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser as DRFJSONParser

from webapp import params

TOO_DEEP = f"JSON parse error - nested deeper than {params.MAX_JSON_DEPTH} levels."


class JSONParser(DRFJSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(TOO_DEEP) from None
        if not params.json_depth_ok(data):
            raise ParseError(TOO_DEEP)
        return data
