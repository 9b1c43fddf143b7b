"""`geryon web`: the Node Monitor, Job Monitor and cluster view over HTTP (aiohttp).

Every request needs the login token made at start: the address printed carries it as
`?token=`, and the first page load trades it for a cookie (HttpOnly, SameSite=Strict)
and drops it from the address bar, as Jupyter does.  A request that changes anything
must also carry the token in the `X-Geryon-Token` header, which a page of another site
cannot send, so a cookie alone never posts a job.  Whoever has the token acts with this
server's certificate: the trees grant exactly that certificate's roles, no more.

Nothing is kept here: each answer is read from the trees (geryon.web.trees).  What the
page may do is bounded: the upload size, the number and size of form fields, and the
ctl verbs it may write (geryon.web.views).
"""

import asyncio
import hmac
import json
import logging
import secrets
import socket
from importlib import resources

from aiohttp import web

from geryon import dial
from geryon.config import Config
from geryon.errors import GeryonError
from geryon.ns.ca import Identity
from geryon.retry import CONNECTION_ERRORS
from geryon.web import views
from geryon.web.trees import Hub, RegistryTree, SchedTree

log = logging.getLogger("geryon.web")

DEFAULT_ADDRESS = "tcp!127.0.0.1!6680"
UPLOAD_MAX = 64 << 20     # bytes of the files of one new job
FIELD_MAX = 65536         # bytes of one form field
PARTS_MAX = 64            # form fields and files of one request
COOKIE = "geryon_token"
HEADER = "X-Geryon-Token"
STATIC = {"app.js": "text/javascript", "app.css": "text/css", "icon.svg": "image/svg+xml"}
HEARTBEAT = 15.0
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self'; connect-src 'self'; form-action 'self'; "
                               "base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
REFUSED = ("geryon web: this address needs the login token that `geryon web` printed when "
           "it started; open the address it printed (it ends with ?token=...)\n")


def roles_of(identity: Identity) -> tuple[str, list[str]]:
    """The certificate's identity and roles (its principals after the first)."""
    principals = list(identity.user()[1].principals)
    return principals[0], principals[1:]


class WebServer:
    """The monitors' HTTP server: start() serves and returns the address to open (token
    included); close() stops it."""

    def __init__(self, config: Config | None = None, address: str = DEFAULT_ADDRESS, *,
                 identity: Identity | None = None, sched: str = "",
                 upload_max: int = UPLOAD_MAX, token: str | None = None):
        self.config = config or Config.load()
        self.address = dial.parse(address, DEFAULT_ADDRESS.rsplit("!", 1)[1])
        self.identity = identity or Identity.load()
        self.upload_max = upload_max
        self.token = token or secrets.token_urlsafe(24)
        self.sched = SchedTree(self.config, self.identity, sched)
        self.registry = RegistryTree(self.config, self.identity)
        self.hub = Hub(self.sched, self.registry)
        self.runner: web.AppRunner | None = None
        self.port: int | None = None
        self.url = ""

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard],
                              client_max_size=self.upload_max + PARTS_MAX * FIELD_MAX)
        app.add_routes([
            web.get("/", self.index),
            web.get("/static/{name}", self.static),
            web.get("/api/me", self.me),
            web.get("/api/sched", self.sched_state),
            web.get("/api/cluster", self.cluster_state),
            web.get("/api/events", self.events),
            web.post("/api/jobs", self.new_job),
            web.post("/api/jobs/{id:[0-9]+}/ctl", self.job_ctl),
            web.get("/api/jobs/{id:[0-9]+}/result", self.result),
            web.post("/api/ctl", self.admin_ctl),
        ])
        return app

    async def start(self) -> str:
        """Serve; the address to open, with the token."""
        name, roles = roles_of(self.identity)  # a missing certificate is said now
        self.runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.address.bind_host() or None, self.address.port,
                           reuse_address=True, shutdown_timeout=2.0)
        try:
            await site.start()
        except OSError as err:
            await self.runner.cleanup()
            raise GeryonError(f"web: cannot listen on {self.address}: {err.strerror}; "
                              "choose another port with -a tcp!127.0.0.1!PORT") from None
        self.port = site._server.sockets[0].getsockname()[1]
        host = socket.gethostname() if self.address.any_host else self.address.host
        if ":" in host:
            host = f"[{host}]"
        self.url = f"http://{host}:{self.port}/?token={self.token}"
        self.hub.start()
        log.info("serving %s as %s (%s)", self.address, name, ",".join(roles))
        return self.url

    async def close(self) -> None:
        self.hub.end_pages()  # each event stream returns, so the pages see the server go
        await self.hub.close()
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        await self.sched.close()
        await self.registry.close()

    # -- the guard ---------------------------------------------------------------------

    def _valid(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(given.encode(), self.token.encode())

    @web.middleware
    async def _guard(self, request: web.Request, handler):
        """Deny by default: no token, no answer; a change needs the header as well."""
        query = request.query.get("token")
        header = request.headers.get(HEADER)
        auth = request.headers.get("Authorization", "")
        if auth.startswith("token "):
            header = header or auth[len("token "):]
        cookie = request.cookies.get(COOKIE)
        if request.method not in ("GET", "HEAD"):
            allowed = self._valid(header)
        else:
            allowed = self._valid(header) or self._valid(cookie) or self._valid(query)
        if not allowed:
            return web.Response(status=403, text=REFUSED, headers=SECURITY_HEADERS)
        if self._valid(query) and request.path == "/":
            # Trade the token in the address for a cookie, and take it out of the address.
            response = web.Response(status=303, headers={"Location": "/",
                                                         **SECURITY_HEADERS})
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="Strict",
                                path="/")
            return response
        try:
            response = await handler(request)
        except web.HTTPException as err:
            err.headers.update(SECURITY_HEADERS)
            raise
        response.headers.update(SECURITY_HEADERS)
        return response

    # -- pages and assets ----------------------------------------------------------------

    async def index(self, request):
        page = resources.files("geryon.web").joinpath("static/index.html").read_text()
        return web.Response(text=page.replace("{{token}}", self.token),
                            content_type="text/html", charset="utf-8")

    async def static(self, request):
        name = request.match_info["name"]
        if name not in STATIC:
            raise web.HTTPNotFound(text=f"no such asset {name[:40]!r}\n")
        data = resources.files("geryon.web").joinpath(f"static/{name}").read_bytes()
        return web.Response(body=data, content_type=STATIC[name])

    async def me(self, request):
        name, roles = roles_of(self.identity)
        return json_response({"name": name, "roles": roles,
                              "upload_max": self.upload_max})

    # -- reading the trees -----------------------------------------------------------------

    async def sched_state(self, request):
        try:
            return json_response(await self.sched.snapshot(self.hub.monitors))
        except CONNECTION_ERRORS as err:
            return unreachable(self.sched.link.error or f"scheduler: {err}")

    async def cluster_state(self, request):
        try:
            return json_response(await self.registry.snapshot())
        except CONNECTION_ERRORS as err:
            return unreachable(self.registry.link.error or f"registry: {err}")

    async def events(self, request):
        """Server-sent events: `sched` and `cluster` when those trees changed, `monitor`
        with a job's new monitor line."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               **SECURITY_HEADERS})
        await response.prepare(request)
        q = self.hub.listen()
        try:
            await response.write(b"retry: 1000\n\nevent: sched\ndata: {}\n\n"
                                 b"event: cluster\ndata: {}\n\n")
            while q in self.hub.pages:
                try:
                    kind, data = await asyncio.wait_for(q.get(), HEARTBEAT)
                except (asyncio.TimeoutError, TimeoutError):
                    await response.write(b": still here\n\n")
                    continue
                if kind == "end":
                    break
                body = json.dumps(data if data is not None else {})
                await response.write(f"event: {kind}\ndata: {body}\n\n".encode())
        except (ConnectionResetError, ConnectionError):
            pass  # the page went away
        finally:
            self.hub.leave(q)
        return response

    async def result(self, request):
        id = int(request.match_info["id"])
        try:
            f = await self.sched.result(id)
        except CONNECTION_ERRORS as err:
            return self._refused(err)
        response = web.StreamResponse(headers={
            "Content-Type": "application/octet-stream",
            "Content-Disposition": f'attachment; filename="job{id}.result"'})
        try:
            await response.prepare(request)
            while data := await f.read():
                await response.write(data)
        finally:
            await f.close()
        await response.write_eof()
        return response

    # -- changing things -------------------------------------------------------------------

    async def new_job(self, request):
        async def act():
            form, files = await read_form(request, self.upload_max)
            kind = form.get("kind", "")
            if kind == "filesplit":
                if "file" not in files:
                    raise views.FormError("filesplit: choose the file whose lines (or "
                                          "records) are the tasks")
                up = files["file"][0]
                argv = views.filesplit_argv(form.get("options", ""), up.name,
                                            form.get("jobtype", ""), form.get("command", ""))
                uploads = [up]
            elif kind == "job":
                argv, uploads = ["job", form.get("spec", "")], files.get("files", [])
            else:
                raise views.FormError(f"new job: kind {kind[:20]!r}: choose filesplit or job")
            priority = form.get("priority", "").strip()
            if len(priority) > 20:
                raise views.FormError("priority: write high, low or a number")
            return {"id": await self.sched.post(argv, uploads,
                                                form.get("description", "").strip(),
                                                priority, start=form.get("start") == "on")}
        return await self._change(act)

    async def job_ctl(self, request):
        async def act():
            message = views.job_message(await read_message(request))
            await self.sched.job_ctl(int(request.match_info["id"]), message)
            return {"ok": message}
        return await self._change(act)

    async def admin_ctl(self, request):
        async def act():
            message = views.admin_message(await read_message(request))
            await self.sched.admin_ctl(message)
            return {"ok": message}
        return await self._change(act)

    async def _change(self, act):
        """Do act(); its answer, or why the page's request or the scheduler refused it."""
        try:
            answer = await act()
        except views.FormError as err:
            return json_response({"error": str(err)}, 400)
        except CONNECTION_ERRORS as err:
            return self._refused(err)
        self.hub.changed("sched")
        return json_response(answer)

    def _refused(self, err):
        """The scheduler said no (400, its words), or could not be reached (503)."""
        if self.sched.link.conn is None:
            return unreachable(self.sched.link.error or f"scheduler: {err}")
        return json_response({"error": str(err)}, 400)


def json_response(data, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


def unreachable(message: str) -> web.Response:
    return json_response({"error": message, "unreachable": True}, 503)


async def read_message(request) -> str:
    """The `message` of a JSON body, bounded."""
    body = await request.content.read(views.MESSAGE_MAX + 1024)
    try:
        data = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise views.FormError("the request is not JSON; send {\"message\": \"...\"}") from None
    message = data.get("message") if isinstance(data, dict) else None
    if not isinstance(message, str):
        raise views.FormError("send {\"message\": \"a ctl message\"}")
    return message


async def read_form(request, upload_max: int) -> tuple[dict, dict]:
    """A multipart form's fields (text, each at most FIELD_MAX bytes) and files (by field
    name, at most upload_max bytes in all), at most PARTS_MAX parts."""
    if not request.content_type.startswith("multipart/form-data"):
        raise views.FormError("new job: send the form as multipart/form-data")
    reader = await request.multipart()
    form: dict[str, str] = {}
    files: dict[str, list[views.Upload]] = {}
    total = parts = 0
    while (part := await reader.next()) is not None:
        parts += 1
        if parts > PARTS_MAX:
            raise views.FormError(f"new job: more than {PARTS_MAX} fields and files")
        name = part.name or ""
        if part.filename is not None:
            if not part.filename and name == "files":
                await part.release()  # the multiple-file field sent with none chosen
                continue
            data = await read_part(part, upload_max - total,
                                   f"the files are larger than {upload_max} bytes in all")
            total += len(data)
            files.setdefault(name, []).append(
                views.Upload(views.upload_name(part.filename), data))
        else:
            data = await read_part(part, FIELD_MAX, f"field {name[:40]!r} is longer than "
                                   f"{FIELD_MAX} bytes")
            try:
                form[name] = data.decode()
            except UnicodeDecodeError:
                raise views.FormError(f"field {name[:40]!r} is not UTF-8 text") from None
    return form, files


async def read_part(part, limit: int, too_big: str) -> bytes:
    buf = bytearray()
    while chunk := await part.read_chunk(65536):
        buf += chunk
        if len(buf) > limit:
            raise views.FormError(f"new job: {too_big}")
    return bytes(buf)
