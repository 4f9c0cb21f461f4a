"""The site as the web server's FastCGI authorizer: every AUTHORIZER request goes to one of its
authorizer views (the web server sends an authorizer no PATH_INFO to route by); requests of the
other roles are the site's usual pages. Its pages are mounted where django.cgi serves them."""

import os

from django.core.wsgi import get_wsgi_application
from fcgi_wsgi.authorizer import route

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_site.settings")
site = get_wsgi_application()

# Apache mod_fcgid (FcgidAuthorizer, FcgidAccessChecker): an anonymous session gets the view's 401.
application = route(site, "/authorize/", script_name="/django.cgi")
# lighttpd ("mode" => "authorizer"): an anonymous session gets the view's redirect to the login page.
with_login = route(site, "/authorize-or-login/", script_name="/django.cgi")
