from django import forms

from .ingest import DatasetError, parse_shape
from .models import Dataset


class UploadForm(forms.Form):
    name = forms.CharField(max_length=200)
    file = forms.FileField(help_text="NPZ with arrays x and y, or CSV with feature columns and a label column.")
    label_column = forms.CharField(max_length=100, initial="label", required=False)
    # Not required, so that clients posting only name + file keep getting images.
    layout = forms.ChoiceField(
        choices=Dataset.Layout.choices,
        initial=Dataset.Layout.IMAGE,
        required=False,
        help_text="Images: rows are pictures (h×w or h×w×channels), for the CNN. Sequences: rows are "
        "fixed-length series of numbers (steps, or steps×features per step), for the LSTM.",
    )
    shape = forms.CharField(
        max_length=40,
        required=False,
        help_text="e.g. 28x28 or 28x28x3 for images, 20x3 for sequences; empty = inferred",
    )

    def clean_layout(self):
        return self.cleaned_data.get("layout") or Dataset.Layout.IMAGE

    def clean(self):
        data = super().clean()
        text = (data.get("shape") or "").strip()
        if text:
            try:
                parse_shape(text, layout=data.get("layout") or Dataset.Layout.IMAGE)
            except DatasetError as exc:
                self.add_error("shape", str(exc))
        data["shape"] = text
        return data
