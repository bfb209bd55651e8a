from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from webapp.params import int_param, parse_id

from .models import Membership
from .services import (
    MembershipError,
    add_member,
    can_manage_members,
    change_role,
    current_team,
    members,
    remove_member,
    role_of,
    teams_for,
)


@require_POST
def switch_team(request):
    team = get_object_or_404(teams_for(request.user), pk=int_param(request.POST, "team", min_value=1))
    request.session["team_id"] = team.pk
    return redirect("dashboard")


@require_http_methods(["GET", "POST"])
def team_members(request):
    """The current team's members; owners and admins add users, change roles and remove members."""
    team = current_team(request)
    if not can_manage_members(request.user, team):
        raise PermissionDenied("Only the team's owners and admins manage its members.")
    error = ""
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "add":
                m = add_member(team, request.user, request.POST.get("username", ""), request.POST.get("role", "member"))
                messages.success(request, f"Added {m.user.username} as {m.role}.")
            elif action == "role":
                m = change_role(team, request.user, _membership(request), request.POST.get("role", ""))
                messages.success(request, f"{m.user.username} is now {m.role}.")
            elif action == "remove":
                m = remove_member(team, request.user, _membership(request))
                messages.success(request, f"Removed {m.user.username} from {team.name}.")
            else:
                raise MembershipError("Unknown action.")
        except MembershipError as exc:
            error = str(exc)
        else:
            if not can_manage_members(request.user, team):  # they changed their own role
                return redirect("dashboard")
            return redirect("team_members")
    ctx = {
        "team": team,
        "members": members(team),
        "roles": Membership.Role.choices,
        "is_owner": role_of(request.user, team) == Membership.Role.OWNER,
        "error": error,
    }
    return render(request, "accounts/members.html", ctx, status=400 if error else 200)


def _membership(request) -> int:
    return parse_id(request.POST.get("membership"), "membership")
