from django.apps import AppConfig


class HistoryConfig(AppConfig):
    """The run history: the runs table (filters, sorting, keyset paging) and the compare page."""

    name = "webapp.history"
    label = "history"
