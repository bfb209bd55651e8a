from django import forms


class UploadForm(forms.Form):
    name = forms.CharField(max_length=200)
    file = forms.FileField(help_text="NPZ with arrays x and y, or CSV with feature columns and a label column.")
    label_column = forms.CharField(max_length=100, initial="label", required=False)
