"""The web monitors: Owen's Node Monitor and Job Monitor and the cluster view, served over
HTTP by `geryon web` as a client of the registry and scheduler trees (docs/web.md).

    from geryon.web import WebServer
    server = WebServer(config, "tcp!127.0.0.1!0")
    url = await server.start()     # http://127.0.0.1:PORT/?token=...
    ...
    await server.close()
"""

from geryon.web.server import DEFAULT_ADDRESS, WebServer

__all__ = ["DEFAULT_ADDRESS", "WebServer"]
