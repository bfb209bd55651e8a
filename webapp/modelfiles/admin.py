from django.contrib import admin

from .models import ModelFile


@admin.register(ModelFile)
class ModelFileAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "team",
        "status",
        "format",
        "input_shape",
        "num_outputs",
        "output_activation",
        "params",
        "created_at",
    ]
    list_filter = ["team", "status", "format"]
    search_fields = ["name", "original_name"]
    readonly_fields = [
        "status",
        "status_reason",
        "check_started_at",
        "checked_at",
        "format",
        "input_shape",
        "num_outputs",
        "output_activation",
        "params",
        "layer_classes",
        "size_bytes",
        "created_by",
        "created_at",
    ]
