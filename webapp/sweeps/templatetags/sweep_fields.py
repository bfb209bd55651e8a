from django import template

from webapp.catalog.registry import schema
from webapp.sweeps.forms import SPACE_EXAMPLE, SweepForm

register = template.Library()


@register.inclusion_tag("sweeps/_sweep_fields.html", takes_context=True)
def sweep_fields(context) -> dict:
    """The sweep's own fieldsets on the new-run page (templates/runs/new.html). In sweep mode they are
    the page's bound SweepForm's; in run mode an unbound SweepForm's, disabled and hidden until the
    page's switch picks Sweep. Built here, not in the run view: the sweep app uses the run app, not
    the other way round."""
    form = context["form"]
    sweep = context.get("mode") == "sweep"
    if not sweep:
        # Only its sweep fields are shown: no team, so no base-model choices are looked up for nothing.
        form = SweepForm(datasets=form.fields["dataset"].queryset, team=None, initial=form.initial)
    return {
        "form": form,
        "enabled": sweep,
        "template_schemas": schema(),  # the space builder's rows (static/js/space_builder.js)
        "space_example": SPACE_EXAMPLE,
    }
