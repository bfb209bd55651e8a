from django.contrib import admin

from .models import NotificationDelivery, NotificationSettings


@admin.register(NotificationSettings)
class NotificationSettingsAdmin(admin.ModelAdmin):
    list_display = ["user", "email_succeeded", "email_failed", "email_stuck", "webhook_url", "updated_at"]
    search_fields = ["user__username", "webhook_url"]
    raw_id_fields = ["user"]
    # webhook_secret is not editable and never shown here.


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(admin.ModelAdmin):
    list_display = ["created", "run", "user", "channel", "event", "status", "attempts", "target"]
    list_filter = ["status", "channel", "event"]
    search_fields = ["user__username", "target", "last_error"]
    raw_id_fields = ["run", "user"]
    readonly_fields = [
        *("run", "user", "channel", "event", "status"),
        *("attempts", "last_error", "target", "created", "updated"),
    ]

    def has_add_permission(self, request):
        return False
