from django.db import transaction


def trial_run_finished(sender, run, **kwargs):
    """A trial's run ended: advance its sweep at once (the periodic tick would, a second later)."""
    from .models import Trial
    from .tasks import advance_sweep

    sweep_id = Trial.objects.filter(run_id=run.pk).values_list("sweep_id", flat=True).first()
    if sweep_id is not None:
        transaction.on_commit(lambda: advance_sweep.delay(sweep_id))
