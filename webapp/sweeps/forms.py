import json

from django import forms

from webapp import params
from webapp.runs.forms import HP_PREFIX, RunForm

from .models import Sweep

SPACE_EXAMPLE = json.dumps(
    {
        "learning_rate": {"type": "range", "low": 0.0001, "high": 0.1, "log": True},
        "optimizer": {"type": "choice", "values": ["adam", "sgd"]},
    },
    indent=2,
)
MAX_SPACE_CHARS = 20_000


def _default(name: str):
    return Sweep._meta.get_field(name).default


def _number(name: str, **attrs):
    # Text, not IntegerField: create_sweep is the one validator of these numbers (its ranges, ASCII digits).
    return forms.CharField(initial=_default(name), widget=forms.NumberInput(attrs={"min": 0, "step": 1, **attrs}))


def _refuse_constant(name):
    raise ValueError(f"{name} is not a JSON number")


class SweepForm(RunForm):
    """The run form (dataset, template, base hyperparameters, cluster and resources) and the sweep's own
    fields; the space is JSON, checked against the template's schema by create_sweep."""

    strategy = forms.ChoiceField(choices=Sweep.Strategy.choices, initial=Sweep.Strategy.RANDOM)
    objective = forms.ChoiceField(choices=Sweep.Objective.choices, initial=Sweep.Objective.VAL_ACCURACY)
    pruner = forms.ChoiceField(choices=Sweep.Pruner.choices, initial=Sweep.Pruner.NONE)
    pruner_startup_trials = _number("pruner_startup_trials")
    pruner_warmup_epochs = _number("pruner_warmup_epochs")
    pruner_reduction_factor = _number("pruner_reduction_factor", min=2)
    max_trials = _number("max_trials", min=1)
    parallel = _number("parallel", min=1)
    seed = _number("seed")
    space = forms.CharField(
        max_length=MAX_SPACE_CHARS,
        initial=json.dumps({"learning_rate": {"type": "range", "low": 0.0001, "high": 0.1, "log": True}}),
        widget=forms.Textarea(attrs={"rows": 8, "cols": 60, "spellcheck": "false"}),
    )

    def clean_space(self):
        try:
            return params.load_json(self.cleaned_data["space"], parse_constant=_refuse_constant)
        except params.JSONTooDeep:
            raise forms.ValidationError("The space is nested too deeply.") from None
        except ValueError as exc:
            raise forms.ValidationError(f"The space is not valid JSON: {exc}") from None

    def add_request_errors(self, errors: dict) -> None:
        """create_sweep's errors on the fields they name ("space.learning_rate" on the space,
        "hyperparameters.epochs" on the chosen template's epochs field), the rest above the form."""
        template = self.data.get("template", "")
        for key, message in errors.items():
            head, _, rest = key.partition(".")
            if head == "space" and rest:
                field, message = "space", f"{rest}: {message}"
            elif head == "hyperparameters" and rest:
                field = f"{HP_PREFIX}{template}_{rest}"
            else:
                field = key
            if field in self.fields:
                self.add_error(field, message)
            else:
                self.add_error(None, f"{key}: {message}")
