from django.contrib import admin

from .models import Run


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "team", "status", "template", "cluster", "created_at"]
    list_filter = ["status", "template", "team"]
    readonly_fields = ["status", "backend_handle", "ingest_token"]
