from django.http import Http404

from .models import Team


def teams_for(user):
    return Team.objects.filter(memberships__user=user).order_by("name")


def current_team(request):
    """The team the user works in: the one chosen in the session, else their first."""
    teams = teams_for(request.user)
    chosen = request.session.get("team_id")
    team = teams.filter(pk=chosen).first() if chosen else None
    team = team or teams.first()
    if team is None:
        raise Http404("You are not a member of any team; ask an admin to add you.")
    return team


def can_submit(user, team):
    return team.memberships.filter(user=user, role__in=["owner", "member"]).exists()
