//! The native half of the `fcgi_wsgi` Python package. The PyO3 module lands with the fcgi-python issue.
