"""/api/… (included from webapp/urls.py). Endpoints are listed in docs/api.md and at /api/docs/."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from . import pages, views

app_name = "api"

urlpatterns = [
    path("runs/", views.RunListView.as_view(), name="run-list"),
    path("runs/<int:pk>/", views.RunDetailView.as_view(), name="run-detail"),
    path("runs/<int:pk>/cancel/", views.RunCancelView.as_view(), name="run-cancel"),
    path("runs/<int:pk>/metrics/", views.RunMetricsView.as_view(), name="run-metrics"),
    path("runs/<int:pk>/logs/", views.RunLogsView.as_view(), name="run-logs"),
    path("runs/<int:pk>/logs/<str:source>/", views.RunDriverLogView.as_view(), name="run-log-driver"),
    path("runs/<int:pk>/logs/<str:source>/<str:stream>/", views.RunLogView.as_view(), name="run-log"),
    path("runs/<int:pk>/predictions/", views.RunPredictionsView.as_view(), name="run-predictions"),
    path("runs/<int:pk>/analysis/", views.RunAnalysisView.as_view(), name="run-analysis"),
    path("runs/<int:pk>/artifacts/", views.RunArtifactsView.as_view(), name="run-artifacts"),
    path("runs/<int:pk>/artifacts/model/", views.RunModelView.as_view(), name="run-model"),
    path("runs/<int:pk>/artifacts/predictions.csv", views.RunPredictionsCsvView.as_view(), name="run-predictions-csv"),
    path("runs/<int:pk>/artifacts/tensorboard.tar.gz", views.RunTensorboardView.as_view(), name="run-tensorboard"),
    path("runs/<int:pk>/resources/", views.RunResourcesView.as_view(), name="run-resources"),
    path("sweeps/", views.SweepListView.as_view(), name="sweep-list"),
    path("sweeps/<int:pk>/", views.SweepDetailView.as_view(), name="sweep-detail"),
    path("sweeps/<int:pk>/cancel/", views.SweepCancelView.as_view(), name="sweep-cancel"),
    path("sweeps/<int:pk>/trials/", views.SweepTrialsView.as_view(), name="sweep-trials"),
    path("models/", views.RegisteredModelListView.as_view(), name="registry-models"),
    path("models/<modelname:name>/", views.RegisteredModelDetailView.as_view(), name="registry-model"),
    path("models/<modelname:name>/versions/", views.ModelVersionListView.as_view(), name="registry-versions"),
    path(
        "models/<modelname:name>/versions/<modelversion:version>/",
        views.ModelVersionDetailView.as_view(),
        name="registry-version",
    ),
    path(
        "models/<modelname:name>/versions/<modelversion:version>/archive/",
        views.ModelVersionArchiveView.as_view(),
        name="registry-archive",
    ),
    path("models/<modelname:name>/aliases/<aliasname:alias>/", views.AliasView.as_view(), name="registry-alias"),
    path("datasets/", views.DatasetListView.as_view(), name="dataset-list"),
    path("datasets/<int:pk>/", views.DatasetDetailView.as_view(), name="dataset-detail"),
    path("clusters/", views.ClusterListView.as_view(), name="cluster-list"),
    path("templates/", views.TemplateListView.as_view(), name="template-list"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", pages.docs_page, name="docs"),
    path("token/", pages.token_page, name="token"),
]
