"""A Django site as the web server's FastCGI authorizer (Apache mod_fcgid's ``FcgidAccessChecker``
or ``FcgidAuthorizer``, lighttpd's ``"mode" => "authorizer"``): Django's session decides who
may fetch the static files and CGI scripts the web server serves itself. (On Apache 2.4,
``FcgidAuthorizer`` is asked only after an authentication module named a user, for
``Require valid-user``; a session alone needs ``FcgidAccessChecker``, asked for every request.)

An authorizer's answer is its status: 200 allows the request, and the response's
``Variable-NAME: value`` headers become variables (``NAME``) of the next stage, a CGI script's
environment for one; any other answer denies it (FastCGI 1.0, section 6.3). lighttpd sends a
denial to the client as written (a 302 to a login page, a 401); mod_fcgid answers 401 whatever
the status, keeping the authorizer's headers (``WWW-Authenticate``).

Two pieces, used together::

    # authorizer.cgi, beside django.cgi
    from django.core.handlers.wsgi import WSGIHandler
    from fcgi_wsgi import serve_wsgi
    from fcgi_wsgi.authorizer import route
    serve_wsgi(route(WSGIHandler(), "/authorize/", script_name="/django.cgi"))

    # urls.py
    from fcgi_wsgi.authorizer import session_authorizer
    urlpatterns = [..., path("authorize/", session_authorizer(login_url="login"))]
"""

from __future__ import annotations

from typing import Callable


def route(app: Callable, path: str, script_name: str = "") -> Callable:
    """Sends every AUTHORIZER request to ``path`` of ``app``; other roles go through untouched.

    The web server sends an authorizer no PATH_INFO (mod_fcgid sends no SCRIPT_NAME either,
    lighttpd the URL asked for), so a framework that routes by URL would see every authorizer
    request as its root page. The URL the client asked for stays in REQUEST_URI. ``script_name``
    is where the site's pages are mounted (what SCRIPT_NAME is for its other requests), so the
    URLs Django builds, a redirect to its login page, point into the site.
    """

    def routed(environ: dict, start_response: Callable):
        if environ.get("FCGI_ROLE") == "AUTHORIZER":
            environ["SCRIPT_NAME"], environ["PATH_INFO"] = script_name, path
        return app(environ, start_response)

    return routed


def session_authorizer(login_url: str | None = None, realm: str = "Django") -> Callable:
    """A Django view that allows the request of a logged-in session, with
    ``Variable-REMOTE_USER`` set to the user's name.

    An anonymous one gets a 302 to ``login_url`` (a path or a URL name, as Django's
    ``LOGIN_URL``), with ``next`` naming the URL it asked for; without ``login_url``, a 401
    with ``WWW-Authenticate: Cookie realm="..."`` (mod_fcgid turns any denial into a 401).
    A request of another role (someone fetching the view's URL) gets a 404.
    """
    from django.contrib.auth.views import redirect_to_login
    from django.http import Http404, HttpResponse
    from django.views.decorators.csrf import csrf_exempt

    # An authorizer gets no body, so a POST to the guarded URL would fail Django's CSRF check.
    @csrf_exempt
    def view(request):
        if request.META.get("FCGI_ROLE") != "AUTHORIZER":
            raise Http404("only the web server asks this")
        if request.user.is_authenticated:
            allowed = HttpResponse(status=200)
            allowed["Variable-REMOTE_USER"] = request.user.get_username()
            return allowed
        asked = request.META.get("REQUEST_URI", "/")
        if login_url is not None:
            return redirect_to_login(asked, login_url)
        denied = HttpResponse("Log in first.\n", status=401, content_type="text/plain; charset=utf-8")
        denied["WWW-Authenticate"] = f'Cookie realm="{realm}"'
        return denied

    return view
