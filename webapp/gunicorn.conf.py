"""The web server's settings (gunicorn), for `make run`, the e2e stack, the benches and docker-compose:
`gunicorn -c webapp/gunicorn.conf.py webapp.wsgi -b HOST:PORT`. Why each value: docs/architecture.md,
"Web server". Options given on gunicorn's command line override these.
"""

from webapp import settings  # the environment's strict parsing, and the stack's var dir
from webapp.keepalive import pre_request  # noqa: F401 - a server hook: a body too big to drain closes

# Processes × threads: requests are short and mostly wait on PostgreSQL, so threads overlap them
# within a process; two processes use two cores and survive one's crash.
workers = settings.WEB_WORKERS
threads = settings.WEB_THREADS
worker_class = "gthread"
# Open connections one process holds, idle kept-alive ones included (they cost a file descriptor, not
# a thread): past this, a response closes its connection instead of keeping it.
worker_connections = 1000

# Longer than any client's idle reuse (browsers' polls every 1–3 s, a proxy's pooled upstream
# connections, ~60 s for nginx and load balancers): the client, not the server, ends an idle
# connection, so a request never races the server's close of the connection it was sent on.
keepalive = 75

# A process whose main loop sent no heartbeat for this long is hung and is replaced. With gthread the
# heartbeat does not wait for requests (they run in threads), so this does not cut long downloads.
timeout = 60
# On SIGTERM / reload: requests in flight get this long to finish; idle connections close within 2 s.
graceful_timeout = 30
# Connections beyond what the threads serve wait in the kernel's queue rather than being refused.
backlog = 2048
# No recycling of processes after N requests: each restart closes the connections it keeps alive,
# and nothing here leaks memory that would call for it (docs/performance.md, web RSS under load).
max_requests = 0

# The control socket (`gunicornc -s var/run/web-<port>.ctl`): one per server under the stack's var dir.
# Gunicorn's default, one path in $HOME for every gunicorn on the host, lets a second server take it
# over and a stopping one delete it.
control_socket_mode = 0o600


def on_starting(server):
    if server.cfg.settings["control_socket"].value != server.cfg.settings["control_socket"].default:
        return  # one given on the command line
    port = next((a[1] for a in server.cfg.address if isinstance(a, tuple)), "unix")
    run_dir = settings.VAR_DIR / "run"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a read-only var dir costs the control interface, not the server
        server.log.warning("no control socket: %s", exc)
        server.cfg.set("control_socket_disable", True)
        return
    server.cfg.set("control_socket", str(run_dir / f"web-{port}.ctl"))
