from django import forms


class ModelUploadForm(forms.Form):
    name = forms.CharField(max_length=200)
    file = forms.FileField(
        help_text="A Keras model saved with model.save(): a .keras archive or a legacy .h5 file "
        "(tf_keras / Keras 2; built-in layers only, no Lambda layers or custom objects)."
    )
