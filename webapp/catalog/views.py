from django.http import JsonResponse
from django.views.decorators.http import require_GET

from .registry import schema


@require_GET
def templates_json(request):
    """The template schemas the run form is generated from (types, ranges, defaults, help)."""
    return JsonResponse({"templates": schema()})
