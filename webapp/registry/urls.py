from django.urls import path

from . import views

urlpatterns = [
    path("", views.model_list, name="registry_list"),
    path("register/", views.register, name="registry_register"),
    path("<modelname:name>/", views.model_detail, name="registry_model"),
    path("<modelname:name>/aliases/", views.alias_set, name="registry_alias_set"),
    path("<modelname:name>/aliases/<aliasname:alias>/remove/", views.alias_remove, name="registry_alias_remove"),
    path("<modelname:name>/<modelversion:version>/", views.version_detail, name="registry_version"),
    path("<modelname:name>/<modelversion:version>/archive/", views.version_archive, name="registry_archive"),
    path("<modelname:name>/<modelversion:version>/download/", views.version_download, name="registry_download"),
]
