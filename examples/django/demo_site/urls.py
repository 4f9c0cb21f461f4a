from django.contrib.auth.views import LoginView
from django.urls import path, re_path
from fcgi_wsgi.authorizer import session_authorizer

from . import views

urlpatterns = [
    path("", views.home),
    path("form/", views.form),
    path("upload/", views.upload),
    path("cookies/", views.cookies),
    path("whoami/", views.whoami),
    path("boom/", views.boom),
    re_path(r"^echo-path/(?P<rest>.*)$", views.echo_path),
    path("login/", LoginView.as_view(template_name="login.html"), name="login"),
    # The web server's authorizer requests (authorizer.py routes them here): under mod_fcgid an
    # anonymous session gets a 401 whatever the view says, so say it with WWW-Authenticate;
    # lighttpd passes a redirect to the login page on to the browser.
    path("authorize/", session_authorizer()),
    path("authorize-or-login/", session_authorizer(login_url="login")),
]
