from django import template
from django.conf import settings

from webapp.monitoring import services, tensorboard

register = template.Library()


@register.simple_tag
def run_monitoring(run) -> dict:
    """What the run page's Resources section starts from (templates/monitoring/_resources.html)."""
    return {
        "progress": services.eta(run),  # the progress bar's steps and ETA at render time
        "has_tensorboard": tensorboard.tensorboard_dir(run) is not None,
        "sample_seconds": settings.SPARKDECK_SAMPLE_SECONDS,
    }
