"""Sparkdeck's command-line client: a pure HTTP client of the REST API (docs/api.md), authenticated
with an API token. It imports nothing from webapp or workers."""
