from django import forms

from webapp.params import name_validator

from .ingest import DatasetError, parse_shape
from .models import Dataset
from .services import DEFAULT_TEST_FRACTION, create_dataset, parse_image_size


class UploadForm(forms.Form):
    name = forms.CharField(max_length=200, validators=[name_validator])
    file = forms.FileField(
        help_text="NPZ with arrays x and y; CSV, TSV or Parquet with feature columns and a label column; "
        "or a ZIP of PNG/JPEG images with one folder per class."
    )
    label_column = forms.CharField(max_length=100, initial="label", required=False)
    # Not required: a client posting only name + file gets "auto" (a table for CSV/TSV/Parquet
    # without an image shape, images for NPZ and ZIP; ingest.shapes.resolve_layout).
    layout = forms.ChoiceField(
        choices=Dataset.UPLOAD_LAYOUTS,
        initial="auto",
        required=False,
        help_text="Automatic: a CSV, TSV or Parquet file is a table unless you give an image shape; NPZ "
        "and ZIP files are images. Images: rows are pictures (h×w or h×w×channels), for the CNN. "
        "Sequences: rows are fixed-length series of numbers (steps, or steps×features per step), for "
        "the LSTM. Table: rows are feature vectors (one column per feature), standardized per feature, "
        "for the MLP.",
    )
    shape = forms.CharField(
        max_length=40,
        required=False,
        help_text="e.g. 28x28 or 28x28x3 for images (with Automatic, a CSV/TSV/Parquet file with an image "
        "shape becomes images), 20x3 for sequences; empty = inferred",
    )
    x_key = forms.CharField(max_length=100, initial="x", required=False, label="Features array (NPZ)")
    y_key = forms.CharField(max_length=100, initial="y", required=False, label="Labels array (NPZ)")
    image_size = forms.CharField(
        max_length=20,
        required=False,
        help_text="ZIP of images: the size every image is brought to, height x width (e.g. 64x64); "
        "empty = the most common size in the archive",
    )
    test_fraction = forms.FloatField(
        min_value=0.01,
        max_value=0.9,
        initial=DEFAULT_TEST_FRACTION,
        required=False,
        help_text="Share of the rows held out for testing (stratified by class); ignored with a test file.",
    )
    test_file = forms.FileField(
        required=False,
        help_text="Optional: the test split as its own file, in the same format; then nothing is split off.",
    )

    def clean_layout(self):
        return self.cleaned_data.get("layout") or "auto"

    def clean_test_fraction(self):
        value = self.cleaned_data.get("test_fraction")
        return DEFAULT_TEST_FRACTION if value is None else value

    def clean_image_size(self):
        text = (self.cleaned_data.get("image_size") or "").strip()
        try:
            parse_image_size(text)
        except DatasetError as exc:
            raise forms.ValidationError(str(exc)) from None
        return text

    def clean(self):
        data = super().clean()
        text = (data.get("shape") or "").strip()
        if text:
            try:
                parse_shape(text, layout=data.get("layout") or "auto")
            except DatasetError as exc:
                self.add_error("shape", str(exc))
        data["shape"] = text
        for key, default in (("x_key", "x"), ("y_key", "y"), ("label_column", "label")):
            data[key] = (data.get(key) or "").strip() or default
        return data

    def create(self, *, team, user) -> Dataset:
        """create_dataset() from this valid form (the upload page and the API both call it); raises
        DatasetError."""
        d = self.cleaned_data
        return create_dataset(
            team=team,
            user=user,
            name=d["name"],
            upload=d["file"],
            label_column=d["label_column"],
            layout=d["layout"],
            shape_text=d["shape"],
            x_key=d["x_key"],
            y_key=d["y_key"],
            image_size_text=d["image_size"],
            test_fraction=d["test_fraction"],
            test_upload=d["test_file"],
        )
