"""The end-to-end harness, one concept per module.

- `apps`: the registry of apps under test (command lines that honour the echo contract).
- `pythonpath`: Python apps for www-data: Debian's interpreter, our wheel and Django unpacked
  into world-readable folders.
- `djangosite`: the Django example site, and the servers in front of it.
- `contract`: what an echo app answers, parsed and expected.
- `process`, `service`, `net`, `logs`: owned child processes, processes that listen, loopback
  addresses, log files.
- `apache`, `nginx`, `lighttpd`: each web server's self-contained config and foreground process.
- `backend`: the app started by the harness itself (`--bind ADDR`).
- `fronts`: `Front` (a running server in front of an app) and the matrix of fronts.
- `client`, `stream`: HTTP requests, and a steady stream of them from a few threads.
- `suexec`: shared hosting, per-user sites that Apache runs through suexec as their users.
- `selection`: `--front` and `--app` for tests that build their own set-ups.
- `procfs`: what a process holds (RSS, its peak, open descriptors) from /proc, sampled over time.
- `stress`: fronts for the reliability, soak and memory tests (nginx streaming both ways,
  mod_fcgid recycling at `max_requests`).
"""
