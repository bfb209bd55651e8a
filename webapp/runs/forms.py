from django import forms

from webapp.catalog.registry import TEMPLATES
from webapp.clusters.models import Cluster
from webapp.datasets.models import Dataset
from webapp.params import text_validator

from . import bases
from .models import Run

HP_PREFIX = "hp_"


class RunForm(forms.Form):
    """Resources and choices; hyperparameter fields are generated from the template schemas."""

    name = forms.CharField(max_length=200, required=False, validators=[text_validator])
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.none())
    template = forms.ChoiceField(choices=[(k, t.label) for k, t in TEMPLATES.items()])
    input_mode = forms.ChoiceField(choices=Run.InputMode.choices, initial=Run.InputMode.TENSORFLOW)
    cluster = forms.ModelChoiceField(queryset=Cluster.objects.enabled())
    num_executors = forms.IntegerField(min_value=1, initial=2, help_text="= TFoS cluster size")
    executor_cores = forms.IntegerField(min_value=1, initial=1)
    executor_memory_mb = forms.IntegerField(min_value=256, initial=2048)
    gpus_per_executor = forms.IntegerField(min_value=0, initial=0, required=False, label="GPUs per executor")

    def __init__(self, *args, datasets, team=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["dataset"].queryset = datasets.filter(status=Dataset.Status.READY)
        clusters = list(self.fields["cluster"].queryset[:2])
        if len(clusters) == 1:  # nothing to choose: the one enabled cluster is picked
            self.fields["cluster"].initial = clusters[0].pk
        for template in TEMPLATES.values():
            for p in template.params:
                field_name = f"{HP_PREFIX}{template.key}_{p.name}"
                # Plain inputs and selects: the template schema is the one validator (see create_run).
                if p.refs:
                    options = bases.options(team, p.refs) if team is not None else []
                    widget = forms.Select(choices=[("", "— pick a model —"), *options])
                elif p.choices:
                    widget = forms.Select(choices=[(c, c) for c in p.choices])
                else:
                    widget = forms.NumberInput(attrs={"min": p.min, "max": p.max, "step": "any"})
                self.fields[field_name] = forms.CharField(
                    required=False, initial=p.default, help_text=p.help, label=p.name.replace("_", " "), widget=widget
                )
                self.fields[field_name].template_key = template.key

    @staticmethod
    def initial_from(run: Run) -> dict:
        """The form filled in like `run` ("rerun with changes")."""
        initial = {
            "name": f"{run.name} (rerun)"[:200],
            "dataset": run.dataset_id,
            "template": run.template,
            "input_mode": run.input_mode,
            "cluster": run.cluster_id,
            "num_executors": run.num_executors,
            "executor_cores": run.executor_cores,
            "executor_memory_mb": run.executor_memory_mb,
            "gpus_per_executor": run.gpus_per_executor,
        }
        for key, value in run.hyperparameters.items():
            initial[f"{HP_PREFIX}{run.template}_{key}"] = value
        return initial

    def cluster_hints(self, team):
        """What each cluster allows, the team's quota there and how many runs wait: shown by the picker."""
        from .states import Status

        hints = []
        for c in self.fields["cluster"].queryset:
            quota = c.quota_for(team) if team is not None else None
            queued = Run.objects.filter(cluster=c, status=Status.QUEUED).count()
            quota_text = quota.text() if quota else ""
            hints.append({"cluster": c, "limits": c.limits_text(), "quota": quota_text, "queued": queued})
        return hints

    def hyperparameter_fields(self):
        return [self[name] for name in self.fields if name.startswith(HP_PREFIX)]

    def raw_hyperparameters(self):
        """The submitted values of the chosen template's fields, as strings."""
        key = self.data.get("template", "")
        prefix = f"{HP_PREFIX}{key}_"
        return {name[len(prefix) :]: value for name, value in self.data.items() if name.startswith(prefix)}
