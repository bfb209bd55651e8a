from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpResponse
from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import include, path

from webapp.accounts import views as account_views
from webapp.catalog import views as catalog_views
from webapp.datasets import views as dataset_views
from webapp.history import compare
from webapp.history import views as history_views
from webapp.modelfiles import views as modelfile_views
from webapp.monitoring import views as monitoring_views
from webapp.notifications import views as notification_views
from webapp.runs import views as run_views
from webapp.sweeps import ingest as sweep_ingest

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/team/", account_views.switch_team, name="switch_team"),
    path("accounts/team/members/", account_views.team_members, name="team_members"),
    path("accounts/notifications/", notification_views.settings_page, name="notification_settings"),
    path("healthz", lambda r: HttpResponse("ok"), name="healthz"),
    # Browsers ask for /favicon.ico wherever a page names no icon (raw files, JSON): the static one.
    path("favicon.ico", lambda r: redirect(static("favicon.svg"), permanent=True), name="favicon"),
    path("", history_views.run_table, name="dashboard"),  # the run table: the team's home page
    path("datasets/", dataset_views.dataset_list, name="dataset_list"),
    path("datasets/upload/", dataset_views.dataset_upload, name="dataset_upload"),
    path("datasets/clear-failed/", dataset_views.dataset_clear_failed, name="dataset_clear_failed"),
    path("datasets/<int:pk>/", dataset_views.dataset_detail, name="dataset_detail"),
    path("datasets/<int:pk>/download/", dataset_views.dataset_download, name="dataset_download"),
    path("datasets/<int:pk>/status.json", dataset_views.dataset_status, name="dataset_status"),
    path("datasets/<int:pk>/delete/", dataset_views.dataset_delete, name="dataset_delete"),
    path("datasets/<int:pk>/archive/", dataset_views.dataset_archive, name="dataset_archive"),
    # Uploaded Keras files under models/files/ (a name the registry reserves), before the registry's models/<name>/.
    path("models/files/", modelfile_views.model_list, name="modelfile_list"),
    path("models/files/upload/", modelfile_views.model_upload, name="modelfile_upload"),
    path("models/files/<int:pk>/", modelfile_views.model_detail, name="modelfile_detail"),
    path("models/files/<int:pk>/download/", modelfile_views.model_download, name="modelfile_download"),
    path("models/", include("webapp.registry.urls")),  # the model registry (docs/registry.md)
    path("catalog/templates.json", catalog_views.templates_json, name="catalog_templates"),
    path("runs/new/", run_views.run_new, name="run_new"),
    path("runs/compare/", compare.compare, name="run_compare"),
    path("runs/compare/data.json", compare.compare_data, name="run_compare_data"),
    path("runs/<int:pk>/", run_views.run_detail, name="run_detail"),
    path("runs/<int:pk>/cancel/", run_views.run_cancel, name="run_cancel"),
    path("", include("webapp.history.urls")),  # runs/<pk>/edit/, star/, archive/
    path("runs/<int:pk>/live.json", run_views.run_live, name="run_live"),
    path("runs/<int:pk>/logs/<str:source>/", run_views.run_log, name="run_log_driver"),
    path("runs/<int:pk>/logs/<str:source>/<str:stream>/", run_views.run_log, name="run_log"),
    path("runs/<int:pk>/predictions/", run_views.run_predictions, name="run_predictions"),
    path("runs/<int:pk>/predictions.csv", run_views.run_predictions_csv, name="run_predictions_csv"),
    path("runs/<int:pk>/analysis/", run_views.run_analysis, name="run_analysis"),
    path("runs/<int:pk>/analysis.json", run_views.run_analysis_json, name="run_analysis_json"),
    path("runs/<int:pk>/series.json", run_views.run_series, name="run_series"),
    path("runs/<int:pk>/model/", run_views.run_model, name="run_model"),
    path("runs/<int:pk>/resources.json", monitoring_views.run_resources, name="run_resources"),
    path("runs/<int:pk>/tensorboard.tar.gz", monitoring_views.run_tensorboard, name="run_tensorboard"),
    path("runs/<int:pk>/log-search.json", monitoring_views.run_log_search, name="run_log_search"),
    path("ingest/runs/<int:pk>/metrics", run_views.ingest_metrics, name="ingest_metrics"),
    path("ingest/runs/<int:pk>/epoch", sweep_ingest.report_epoch, name="ingest_epoch"),
    path("sweeps/", include("webapp.sweeps.urls")),
    path("api/", include("webapp.api.urls")),  # REST API, schema, docs, token page (docs/api.md)
]

# A bad id, number or name in a request (webapp/params.py): 400 with what was wrong; JSON under /api/.
handler400 = "webapp.errors.bad_request"
handler404 = "webapp.errors.not_found"
