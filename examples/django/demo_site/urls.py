from django.urls import path, re_path

from . import views

urlpatterns = [
    path("", views.home),
    path("form/", views.form),
    path("upload/", views.upload),
    path("cookies/", views.cookies),
    path("whoami/", views.whoami),
    path("boom/", views.boom),
    re_path(r"^echo-path/(?P<rest>.*)$", views.echo_path),
]
