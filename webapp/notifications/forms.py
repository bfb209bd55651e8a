from django import forms

from .models import NotificationSettings
from .validators import validate_webhook_url


class NotificationSettingsForm(forms.ModelForm):
    class Meta:
        model = NotificationSettings
        fields = ["email_succeeded", "email_failed", "email_stuck", "webhook_url"]
        help_texts = {
            "webhook_url": "Receives a signed JSON POST for each event (http or https, a public host). "
            "Leave empty for none."
        }

    def clean_webhook_url(self):
        url = (self.cleaned_data.get("webhook_url") or "").strip()
        if url:
            validate_webhook_url(url)
        return url
