"""Signals other apps listen to (a listener may import runs; runs never imports them)."""

from django.dispatch import Signal

# Sent by Run.transition once a run is in a terminal status (sender=Run, run=the run).
run_finished = Signal()
