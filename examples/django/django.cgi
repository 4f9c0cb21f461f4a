#!/usr/bin/env python3
"""The recipe's django.cgi with only its import line changed. The same file serves FastCGI under
mod_fcgid (`AddHandler fcgid-script .cgi`) and CGI under mod_cgi (`AddHandler cgi-script .cgi`)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_site.settings")

from fcgi_wsgi import serve_wsgi  # noqa: E402

from django.core.handlers.wsgi import WSGIHandler  # noqa: E402

serve_wsgi(WSGIHandler())
