"""The logged-in user's own notification settings (there is no way to name another user's)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from . import services
from .forms import NotificationSettingsForm
from .models import NotificationDelivery, new_webhook_secret


@login_required
@require_http_methods(["GET", "POST"])
def settings_page(request):
    """GET: the form. POST action=save: store it (a first webhook URL makes a secret, shown on that
    response only); action=rotate: a new secret, shown once."""
    prefs = services.settings_for(request.user)
    new_secret = None
    form = NotificationSettingsForm(instance=prefs)
    status = 200
    if request.method == "POST":
        action = request.POST.get("action", "save")
        if action == "rotate":
            if not prefs.pk or not prefs.webhook_url:
                messages.error(request, "Set a webhook URL first.")
                return redirect("notification_settings")
            new_secret = services.rotate_secret(prefs)
        elif action == "save":
            form = NotificationSettingsForm(request.POST, instance=prefs)
            if form.is_valid():
                prefs = form.save(commit=False)
                if prefs.webhook_url and not prefs.webhook_secret:
                    prefs.webhook_secret = new_webhook_secret()
                    new_secret = prefs.webhook_secret
                prefs.save()
                if not new_secret:
                    messages.success(request, "Notification settings saved.")
                    return redirect("notification_settings")
                form = NotificationSettingsForm(instance=prefs)
            else:
                status = 400
        else:
            messages.error(request, "Unknown action.")
            return redirect("notification_settings")
    recent = NotificationDelivery.objects.filter(user=request.user).select_related("run")[:20]
    ctx = {
        "form": form,
        "prefs": prefs,
        "new_secret": new_secret,
        "recent": recent,
        "has_email": bool(request.user.email),
    }
    response = render(request, "notifications/settings.html", ctx, status=status)
    if new_secret:
        response["Cache-Control"] = "no-store"
    return response
