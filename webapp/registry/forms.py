from django import forms

from .services import MAX_DESCRIPTION


class RegisterForm(forms.Form):
    """The names and texts only; services.register_run / register_modelfile check them."""

    name = forms.CharField(
        max_length=100,
        help_text="An existing model of the team (a new version) or a new name: letters, digits and . _ -",
        widget=forms.TextInput(attrs={"list": "model-names", "autocomplete": "off"}),
    )
    description = forms.CharField(
        max_length=MAX_DESCRIPTION, required=False, widget=forms.Textarea(attrs={"rows": 3, "cols": 50})
    )
    model_description = forms.CharField(
        max_length=MAX_DESCRIPTION,
        required=False,
        help_text="Only for a new model: what the model is for.",
        widget=forms.Textarea(attrs={"rows": 2, "cols": 50}),
    )
