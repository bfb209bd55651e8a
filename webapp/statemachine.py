"""The compare-and-set status move shared by runs and datasets (each declares its own statuses,
TRANSITIONS and STAMPS in its states.py)."""

from django.utils import timezone


class IllegalTransition(Exception):
    """The state machine forbids this move."""


class StaleStatus(Exception):
    """Another writer moved the row first (compare-and-set lost), or deleted it."""


def check_move(transitions: dict, what: str, current: str, target: str) -> None:
    if target not in transitions[current]:
        raise IllegalTransition(f"a {what} cannot go from {current} to {target}")


def compare_and_set(obj, target: str, transitions: dict, stamps: dict, fields: dict, where: dict | None = None) -> None:
    """Move `obj` to `target` only if its row still has the status `obj` holds (and the values in
    `where`); stamp the time the status records (stamps) and write `fields` in the same UPDATE. On a
    lost race the in-memory copy is refreshed (where the row still exists) and StaleStatus is raised."""
    what = type(obj)._meta.verbose_name
    check_move(transitions, what, obj.status, target)
    fields = {**fields, "status": target}
    if target in stamps:
        fields[stamps[target]] = timezone.now()
    model = type(obj)
    if model.objects.filter(pk=obj.pk, status=obj.status, **(where or {})).update(**fields) != 1:
        expected = obj.status
        current = model.objects.filter(pk=obj.pk).values_list("status", flat=True).first()
        if current is not None:
            obj.refresh_from_db()
        raise StaleStatus(f"{what} {obj.pk} is now {current or 'deleted'}, not {expected}")
    for key, value in fields.items():
        setattr(obj, key, value)
