from django.conf import settings
from django.db import models


class Team(models.Model):
    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"  # everything an admin can, and makes or removes owners and admins
        ADMIN = "admin", "Admin"  # manages members (not owners), edits any run of the team
        MEMBER = "member", "Member"  # submits runs, edits their own
        VIEWER = "viewer", "Viewer"  # reads only

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "user"], name="one_membership_per_team")]

    def __str__(self):
        return f"{self.user} in {self.team} ({self.role})"


class TeamScopedQuerySet(models.QuerySet):
    """Every team-owned model uses this: views never query without `for_user`."""

    def for_user(self, user):
        if not user.is_authenticated:
            return self.none()
        return self.filter(team__memberships__user=user)
