from django.urls import path

from . import views

urlpatterns = [
    path("", views.sweep_list, name="sweep_list"),
    path("new/", views.sweep_new, name="sweep_new"),
    path("limit.json", views.sweep_limit, name="sweep_limit"),
    path("<int:pk>/", views.sweep_detail, name="sweep_detail"),
    path("<int:pk>/live.json", views.sweep_live, name="sweep_live"),
    path("<int:pk>/cancel/", views.sweep_cancel, name="sweep_cancel"),
    path("<int:pk>/rerun-best/", views.sweep_rerun_best, name="sweep_rerun_best"),
]
