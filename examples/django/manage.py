#!/usr/bin/env python3
"""Django's command line for the demo site: `./manage.py migrate` creates its users' database,
`./manage.py createsuperuser` a user."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
