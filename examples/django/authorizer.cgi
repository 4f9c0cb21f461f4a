#!/usr/bin/env python3
"""django.cgi's twin for the authorizer (`FcgidAuthorizer /path/to/authorizer.cgi`): the same
site, its authorizer requests routed to the view that answers them (demo_site/authorizer.py)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_site.settings")

from fcgi_wsgi import serve_wsgi  # noqa: E402

from demo_site.authorizer import application  # noqa: E402

serve_wsgi(application)
