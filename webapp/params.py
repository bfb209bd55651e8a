"""The one strict parser for the ids, numbers and names a request carries (query parameters, form fields,
headers, JSON values).

- Numbers: ASCII digits only, with a leading "-" only where negatives are allowed. `str.isdigit()` and
  `int()` are too lenient here: '³'.isdigit() is True and int('³') then fails; int() takes '٣', '１',
  ' 1 ' and '1_000'; and int('9' * 5000) fails on its digit limit.
- Bounded: every number has a range, by default one that fits a BigAutoField / bigint column.
- Text: control characters (NUL included, which PostgreSQL cannot store) are refused, length bounded.

A bad value raises BadParam, a django BadRequest: a page answers 400 through webapp/errors.py's
handler400, which shows the message; the API answers DRF's 400 `{"name": ["message"]}`
(webapp/api/errors.py).
"""

import json
import math
import re

from django.core.exceptions import BadRequest
from django.core.validators import RegexValidator

MAX_ID = 2**63 - 1  # BigAutoField, bigint columns
MAX_INT32 = 2**31 - 1  # integer columns
MAX_FLOAT = 1e300  # bounds a float parameter that has no narrower range of its own
REQUIRED = object()

_INT = re.compile(r"-?[0-9]+")
_FLOAT = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SLUG = re.compile(r"[-a-zA-Z0-9_]+")
MAX_FLOAT_TEXT = 40


class BadParam(BadRequest):
    """`name` is the parameter, `message` what is wrong with it (never the value: it may be anything)."""

    def __init__(self, name: str, message: str):
        self.name = name
        self.message = message
        super().__init__(f"{name}: {message}")


def _range_text(min_value, max_value) -> str:
    return f"from {min_value} to {max_value}"


def parse_int(
    value, name: str, *, min_value: int = 0, max_value: int = MAX_ID, default=REQUIRED, blank_is_absent: bool = True
) -> int:
    """`value` (a str, or an int from JSON) as an int in [min_value, max_value]; None → `default`, and ""
    too unless `blank_is_absent` is False (then "" is refused like any other non-number)."""
    if value is None or (value == "" and blank_is_absent):
        if default is REQUIRED:
            raise BadParam(name, f"required: a whole number {_range_text(min_value, max_value)}")
        return default
    wrong = BadParam(name, f"must be a whole number {_range_text(min_value, max_value)} (digits 0-9)")
    if isinstance(value, bool):
        raise wrong
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        # No longer than the widest bound: int() of thousands of digits is slow, then refused anyway.
        widest = max(len(str(min_value)), len(str(max_value)))
        if len(value) > widest or not _INT.fullmatch(value):
            raise wrong
        number = int(value)
    else:
        raise wrong
    if not min_value <= number <= max_value:
        raise wrong
    return number


def parse_id(value, name: str, *, default=REQUIRED, max_value: int = MAX_ID) -> int:
    """An object id: a whole number from 1 to the column's maximum."""
    return parse_int(value, name, min_value=1, max_value=max_value, default=default)


def parse_float(value, name: str, *, min_value: float, max_value: float, default=REQUIRED) -> float:
    """A finite number in [min_value, max_value] written with ASCII digits (1, -2.5, 1e-3)."""
    if value is None or value == "":
        if default is REQUIRED:
            raise BadParam(name, f"required: a number {_range_text(min_value, max_value)}")
        return default
    wrong = BadParam(name, f"must be a number {_range_text(min_value, max_value)}")
    if isinstance(value, bool):
        raise wrong
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str) and len(value) <= MAX_FLOAT_TEXT and _FLOAT.fullmatch(value):
        number = float(value)
    else:
        raise wrong
    if not math.isfinite(number) or not min_value <= number <= max_value:
        raise wrong
    return number


def clean_text(value, name: str, *, max_length: int = 200, default: str = "", strip: bool = True) -> str:
    """Text without control characters, at most `max_length` characters (after stripping); None → default."""
    if value is None:
        return default
    if not isinstance(value, str):
        raise BadParam(name, "must be text")
    if _CONTROL.search(value):
        raise BadParam(name, "must not contain control characters (such as NUL)")
    if strip:
        value = value.strip()
    if len(value) > max_length:
        raise BadParam(name, f"at most {max_length} characters")
    return value


def id_or_slug(value, name: str, *, max_length: int = 100) -> int | str:
    """A team-like reference: an id (ASCII digits) or a slug (letters, digits, - and _)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return parse_id(value, name)
    text = clean_text(value, name, max_length=max_length, strip=False)
    if text.isascii() and text.isdigit():
        return parse_id(text, name)
    if not _SLUG.fullmatch(text):
        raise BadParam(name, "must be an id (digits 0-9) or a slug (letters, digits, - and _)")
    return text


FLAGS = {"1": True, "true": True, "0": False, "false": False}


def parse_flag(value, name: str, *, default: bool = False) -> bool:
    """A yes/no parameter: 1 or true, 0 or false (exactly); None (absent) → `default`."""
    if value is None:
        return default
    if value not in FLAGS:
        raise BadParam(name, "must be 1, true, 0 or false")
    return FLAGS[value]


def int_param(query, name: str, **kwargs) -> int:
    """parse_int of a query/form parameter (a QueryDict or any mapping of strings)."""
    return parse_int(query.get(name), name, **kwargs)


def has_control_characters(text: str) -> bool:
    return bool(_CONTROL.search(text))


# Names people give things (runs, datasets), as validators of forms and serializers; their patterns also
# go into the OpenAPI schema. TEXT: no control characters. NAME: that, and not blank.
TEXT_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
NAME_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
CONTROL_MESSAGE = "Control characters (such as NUL) are not allowed."
text_validator = RegexValidator(TEXT_PATTERN, CONTROL_MESSAGE, code="control_characters")
# Free text (notes) may hold newlines and tabs, never NUL (PostgreSQL cannot store it; DRF refuses it too).
NOTE_PATTERN = r"^[^\x00]*$"
note_validator = RegexValidator(NOTE_PATTERN, "Null characters are not allowed.", code="null_characters")
name_validator = RegexValidator(NAME_PATTERN, "A name needs a visible character and no control characters.")


MAX_JSON_DEPTH = 32  # far deeper than any body or field the app takes (a sweep's space is 4 levels)


class JSONTooDeep(ValueError):
    def __init__(self):
        super().__init__(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")


def json_depth_ok(data, max_depth: int = MAX_JSON_DEPTH) -> bool:
    """Whether decoded JSON nests at most `max_depth` levels (walked without recursion: a value just
    shallow enough to decode can still exhaust the stack of whatever walks it later)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > max_depth:
            return False
        stack.extend((child, depth + 1) for child in children)
    return True


def load_json(text, **kwargs):
    """json.loads refusing deep nesting with JSONTooDeep (the C decoder's RecursionError included); any
    other bad input raises its ValueError (JSONDecodeError, a UnicodeDecodeError of bytes)."""
    try:
        data = json.loads(text, **kwargs)
    except RecursionError:
        raise JSONTooDeep() from None
    if not json_depth_ok(data):
        raise JSONTooDeep()
    return data
