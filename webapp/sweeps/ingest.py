"""The executors' epoch report of a sweep's trial (token-authenticated like the metrics ingest)."""

import math

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from webapp.runs.views import token_json

from . import services


@csrf_exempt  # authenticated by the run's bearer token, not a session
@require_POST
def report_epoch(request, pk):
    """{"epoch": E, "value": v, "executor": "0"} → {"decision": "continue" | "stop"}; the first answer
    for an epoch is every node's answer (docs/architecture.md, "Early stopping"). A diverged value
    (NaN/inf, which JSON cannot carry) comes as {"value": null, "diverged": true}."""
    run, payload = token_json(request, pk)
    if run is None:
        return payload
    if not isinstance(payload, dict):
        return JsonResponse({"error": "body must be a JSON object"}, status=400)
    try:
        value = payload.get("value")
        if payload.get("diverged") is True and value is None:
            value = math.nan
        decision = services.report_epoch(run, payload.get("epoch"), value)
    except services.EpochReportError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse({"decision": decision, "epoch": payload["epoch"]})
