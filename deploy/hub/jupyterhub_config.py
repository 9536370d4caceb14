"""JupyterHub's configuration for a class on one machine (``make hub``; tlcourse/course/hub.py).

The hub runs as root in its state folder; ``TLCOURSE_HUB_ROOT`` names its folder, whose
``state/settings.json`` (written by ``hub setup``) holds the class's settings.
"""

import json
import os
import pwd
import sys

from tlcourse.course.hub import Layout, server_environment

c = get_config()  # noqa: F821 (JupyterHub's config loader provides it)

layout = Layout(os.environ["TLCOURSE_HUB_ROOT"])
root = layout.root
settings = json.loads(layout.settings.read_text())
instructor = settings["instructor"]

# The public port; the hub's own API and the proxy's API on the two after it, on localhost only.
c.JupyterHub.bind_url = f"http://{settings['ip']}:{settings['port']}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{settings['port'] + 1}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{settings['port'] + 2}"
c.JupyterHub.db_url = f"sqlite:///{root / 'state' / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(root / "state" / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(root / "state" / "jupyterhub.pid")
c.ConfigurableHTTPProxy.pid_file = str(root / "state" / "proxy.pid")
c.ConfigurableHTTPProxy.command = [
    str(layout.proxy / "node_modules" / ".bin" / "configurable-http-proxy")
]

# Who may log in: the instructor (the hub's admin) and the members of the students' group, each
# with their system password. Accounts: `python -m tlcourse.course.hub add-students NAME...`.
c.JupyterHub.authenticator_class = "pam"
c.PAMAuthenticator.open_sessions = False  # no login session (systemd-logind) per server
c.Authenticator.admin_users = {instructor}
c.Authenticator.allowed_users = {instructor}
c.PAMAuthenticator.allowed_groups = {settings["group"]}

# Each server runs as its user, in the user's home, from the shared environment (no solution
# in it).
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [str(layout.venv / "bin" / "jupyterhub-singleuser")]
c.Spawner.notebook_dir = "~"
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
c.Spawner.poll_interval = 10  # a server that died (killed, out of memory) is noticed within 10 s


# The course's settings for each server (tlcourse.course.hub.server_environment): the shared
# environment first on the PATH, models and results in the home, the shared weights and photos.
c.Spawner.environment = server_environment(
    layout, home=lambda spawner: pwd.getpwnam(spawner.user.name).pw_dir, fast=settings["fast"]
)


def _student_settings(spawner):
    """A student's server reads the students' Jupyter settings first: no formgrader."""
    if spawner.user.name != instructor:
        spawner.environment = {
            **spawner.environment,
            "JUPYTER_CONFIG_PATH": str(layout.student_config),
        }


c.Spawner.pre_spawn_hook = _student_settings

# Servers idle for an hour are stopped (the homes stay); jupyterhub-idle-culler, as a hub service.
c.JupyterHub.load_roles = [
    {
        "name": "idle-culler",
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        "services": ["idle-culler"],
    }
]
c.JupyterHub.services = [
    {
        "name": "idle-culler",
        "command": [
            sys.executable,
            "-m",
            "jupyterhub_idle_culler",
            f"--timeout={settings['cull_after_s']}",
            f"--cull-every={max(60, settings['cull_after_s'] // 12)}",
        ],
    }
]
