"""drf-spectacular: how the token authentication appears in the OpenAPI document."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "webapp.api.authentication.ApiTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <key>` (or `Bearer <key>`); make or rotate the key on /api/token/.",
        }


# What every operation can answer besides what its view documents (drf-spectacular POSTPROCESSING_HOOKS):
# 401 without credentials (every endpoint needs them), 400 where it reads parameters or a body (also a
# body that does not parse), 415 for a body of another media type, 403 for a browser session's unsafe
# request without its CSRF token, 404 where the path names an object. Error responses get their body.
ERROR_BODY = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
VALIDATION_BODY = {
    "type": "object",
    "description": '{"field": ["message", ...], ...}; {"detail": "..."} for a body that does not parse.',
    "additionalProperties": {
        "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}, {"type": "object"}]
    },
}
DEFAULT_DESCRIPTIONS = {
    "400": "Bad input.",
    "401": "No credentials, or a bad token.",
    "403": "Your role does not allow this (or a session request without its CSRF token).",
    "404": "Not one of your teams' objects (or no such file).",
    "415": "A body of a media type this operation does not take.",
}
UNSAFE = ("post", "put", "patch", "delete")


def _error_response(code: str, described: dict | None) -> dict:
    response = dict(described or {"description": DEFAULT_DESCRIPTIONS.get(code, "Error.")})
    if "content" not in response:
        body = VALIDATION_BODY if code == "400" else ERROR_BODY
        response["content"] = {"application/json": {"schema": body}}
    return response


def document_errors(result, generator, request, public):
    for path, operations in result.get("paths", {}).items():
        for method, op in operations.items():
            responses = op.setdefault("responses", {})
            codes = {"401"}
            if op.get("parameters") or op.get("requestBody"):
                codes.add("400")
            if op.get("requestBody"):
                codes.add("415")
            if method in UNSAFE:
                codes.add("403")
            if "{" in path:
                codes.add("404")
            for code in codes | {c for c in responses if c[0] in "45"}:
                responses[code] = _error_response(code, responses.get(code))
            op["responses"] = dict(sorted(responses.items()))
    return result
