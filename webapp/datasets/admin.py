from django.contrib import admin

from .models import Dataset


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "team", "source_format", "status", "train_rows", "test_rows", "created_at"]
    list_filter = ["team", "status"]
