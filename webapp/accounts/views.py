from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from .services import teams_for


@require_POST
def switch_team(request):
    team = get_object_or_404(teams_for(request.user), pk=request.POST.get("team"))
    request.session["team_id"] = team.pk
    return redirect("dashboard")
