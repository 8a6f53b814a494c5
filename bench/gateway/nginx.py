"""nginx as the compiled-proxy baseline: 1 worker, proxy_buffering off, HTTP/1.1 upstream keep-alive."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

CONF = """
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  upstream llama {{ server {upstream}; keepalive 64; keepalive_timeout 4s; }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      proxy_pass http://llama;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 600s;
    }}
  }}
}}
"""


def available() -> str | None:
    return shutil.which("nginx") or (path if Path(path := "/usr/sbin/nginx").exists() else None)


def start(prefix: Path, port: int, upstream_hostport: str, own_session: bool = True) -> subprocess.Popen[bytes]:
    """nginx leading its own process group, in its own session or (`own_session=False`) in ours."""
    binary = available()
    assert binary is not None
    prefix.mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(CONF.format(prefix=prefix, port=port, upstream=upstream_hostport))
    return subprocess.Popen([binary, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=own_session, process_group=None if own_session else 0)
