"""Run editing; the run table itself is the site's home page ("" in webapp/urls.py, name "dashboard")."""

from django.urls import path

from . import views

urlpatterns = [
    path("runs/<int:pk>/edit/", views.run_edit, name="run_edit"),
    path("runs/<int:pk>/star/", views.run_star, name="run_star"),
    path("runs/<int:pk>/archive/", views.run_archive, name="run_archive"),
]
