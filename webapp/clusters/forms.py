"""The cluster admin form: JSON text areas whose problems come back on the field itself."""

from django import forms

from . import sparkconf
from .models import Cluster

JSON_WIDGET = forms.Textarea(attrs={"rows": 4, "cols": 80, "style": "font-family: monospace"})


def _allowed_keys_help() -> str:
    return "Allowed keys: " + ", ".join(f"{k} ({sparkconf.EXPLAIN[v]})" for k, v in sorted(sparkconf.ALLOWED.items()))


class ClusterAdminForm(forms.ModelForm):
    class Meta:
        model = Cluster
        # Every editable field (the admin narrows this to its fieldsets): Cluster.clean() may file an
        # error under any of them, and a form without that field could not show it.
        fields = [f.name for f in Cluster._meta.concrete_fields if f.editable and not f.primary_key]
        widgets = {"extra_conf": JSON_WIDGET, "executor_env": JSON_WIDGET}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "extra_conf" in self.fields:
            field = self.fields["extra_conf"]
            field.help_text = f"{field.help_text} {_allowed_keys_help()}."

    # An emptied text area means "nothing extra", not JSON null (the columns are NOT NULL and
    # Cluster.clean() wants an object). Model.clean() then reports per-field problems, which
    # ModelForm files under extra_conf / executor_env.
    def clean_extra_conf(self):
        value = self.cleaned_data.get("extra_conf")
        return {} if value in (None, "") else value

    def clean_executor_env(self):
        value = self.cleaned_data.get("executor_env")
        return {} if value in (None, "") else value
