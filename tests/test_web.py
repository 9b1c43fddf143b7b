"""The web monitors in a real browser: Playwright for Python driving Debian's Chromium
against a live loopback cluster (a registry, a node with chunks and a cpu, a scheduler,
workers, and `geryon web`).  Each test saves a screenshot under build/test-artifacts/web/
(or $GERYON_WEB_ARTIFACTS), named by the test.

Chromium and Playwright must be installed (`scripts/dev test` installs both); without
them these tests fail, they are never skipped."""

import hashlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from support import (GERYON, Process, cpu_options, env_for, make_corpus, make_home,
                     member_home, start_node, start_registry)

from geryon.owen.records import read_records

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # said by the browser fixture: these tests fail, never skip
    sync_playwright = expect = None

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(os.environ.get("GERYON_WEB_ARTIFACTS") or
                 Path(__file__).resolve().parent.parent / "build" / "test-artifacts" / "web")
LINES = [f"line {i}: the quick brown fox {i * 7}" for i in range(12)]


def start_sched(home, state, registry):
    port_file = home / "sched.port"
    proc = Process(home, ["sched", "-a", "tcp!127.0.0.1!0", "--state", str(state),
                          "-R", registry, "--port-file", str(port_file)], port_file)
    proc.address = f"tcp!127.0.0.1!{proc.port}"
    return proc


def start_worker(home, sched, root, name, slots=2):
    root.mkdir(parents=True, exist_ok=True)
    ready = root / "ready"
    return Process(home, ["worker", "--root", str(root), "--name", name, "--slots",
                          str(slots), "--install", "test", "--install", "exec",
                          "--ready", str(ready)], ready, GERYON_SCHED=sched)


def start_web(home, tmp, env, extra=()):
    ready = tmp / f"web-{time.monotonic_ns()}.ready"
    proc = Process(home, ["web", "-a", "tcp!127.0.0.1!0", "--ready", str(ready), *extra],
                   ready, **env)
    proc.url = ready.read_text().strip()
    proc.base = proc.url.split("/?")[0]
    return proc


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("web")
    home = make_home(tmp / "home")
    registry = start_registry(home)
    node = start_node(home, registry.address, tmp / "chunks", "node0", 3, "16M",
                      extra=cpu_options(tmp / "state0"))
    sched = start_sched(home, tmp / "sched", registry.address)
    workers = [start_worker(home, sched.address, tmp / f"w{i}", f"w{i}") for i in range(2)]
    env = {"GERYON_REGISTRY": registry.address, "GERYON_SCHED": sched.address,
           "GERYON_NDB": tmp / "ndb" / "cluster"}
    web = start_web(home, tmp, env)
    yield {"home": home, "tmp": tmp, "env": env, "web": web, "sched": sched,
           "registry": registry}
    for proc in [web, *workers, sched, node, registry]:
        proc.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if sync_playwright is None:
        pytest.fail("the playwright Python package is missing: `scripts/dev test` installs "
                    "it (pip install -e '.[test]')")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `scripts/dev test` installs it "
                    "(apt-get install -y chromium)")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM,
            headless=True, args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 800},
            accept_downloads=True)
        yield context
        context.close()


@pytest.fixture
def another_web(cluster):
    """Start more `geryon web` servers (home, env, flags); they stop after the test's
    screenshot is taken (ask for this fixture before `page`)."""
    started = []

    def start(home, env, extra=()):
        started.append(start_web(home, cluster["tmp"], env, extra))
        return started[-1]

    yield start
    for web in started:
        web.stop()


@pytest.fixture
def page(browser, request):
    """A fresh page at 1280x800; its screenshot is saved when the test ends."""
    page = browser.new_page()
    page.set_default_timeout(20000)
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    page.close()


def owen(cluster, *args):
    result = subprocess.run([GERYON, "owen", *args], env=env_for(cluster["home"], **cluster["env"]),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def geryon(cluster, *args, timeout=120):
    result = subprocess.run([GERYON, *args], env=env_for(cluster["home"], **cluster["env"]),
                            capture_output=True, text=True, timeout=timeout,
                            cwd=cluster["tmp"])
    assert result.returncode == 0, f"geryon {args}: {result.stderr}"
    return result.stdout


def open_monitors(page, cluster):
    page.goto(cluster["web"].url)
    expect(page.locator("#live")).to_have_text("live")
    expect(page.locator('[data-node="w0"]')).to_be_visible()


def make_filesplit_job(page, name: str, data: bytes, command: str) -> int:
    form = page.locator("#job-form")
    form.locator('input[name="kind"][value="filesplit"]').check()
    form.locator('input[name="file"]').set_input_files(
        {"name": name, "mimeType": "text/plain", "buffer": data})
    form.locator('input[name="command"]').fill(command)
    form.locator('button[type="submit"]').click()
    made = page.locator("#job-made")
    expect(made).to_be_visible()
    return int(made.inner_text().split()[-1].rstrip("."))


def http(url, method="GET", headers=None, data=None):
    """(status, body) of a request, refusals included."""
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def md5(text: bytes) -> bytes:
    return hashlib.md5(text).hexdigest().encode() + b"  -\n"


def test_a_request_without_the_token_is_refused(cluster, page):
    web = cluster["web"]
    token = web.url.split("token=")[1]
    for path in ["/", "/api/sched", "/api/cluster", "/api/events", "/static/app.js",
                 "/api/jobs/1/result", "/?token=wrong" + token[5:]]:
        status, body = http(web.base + path)
        assert status == 403, path
        assert "login token" in body
    # A cookie alone never changes anything: the header must carry the token too.
    status, _ = http(web.base + "/api/ctl", "POST", {"Cookie": f"geryon_token={token}",
                                                      "Content-Type": "application/json"},
                     json.dumps({"message": "group none"}).encode())
    assert status == 403
    assert http(web.base + "/api/sched", headers={"Cookie": f"geryon_token={token}"})[0] == 200
    response = page.goto(web.base + "/")
    assert response.status == 403
    expect(page.locator("body")).to_contain_text("needs the login token")
    page.goto(web.url)
    assert page.url == web.base + "/"  # the token went into a cookie, out of the address
    expect(page.locator("h2").first).to_have_text("Job Monitor")
    expect(page.locator("#me")).to_contain_text("admin-1 · admin submit worker cpu monitor")


def test_a_filesplit_job_made_on_the_page_reaches_100_percent(cluster, page):
    open_monitors(page, cluster)
    page.evaluate("window.notReloaded = true")
    data = "".join(line + "\n" for line in LINES).encode()
    id = make_filesplit_job(page, "mytasks", data, "{ sleep 0.3; md5sum }")
    row = page.locator(f'[data-job="{id}"]')
    expect(row).to_have_attribute("data-state", "complete", timeout=60000)
    expect(row.locator(".bar")).to_have_attribute("data-percent", "100")
    expect(row.locator(".bar")).to_contain_text(f"{len(LINES)} / {len(LINES)} (100%)")
    assert page.evaluate("window.notReloaded") is True  # it got there live
    with page.expect_download() as download:
        row.locator("a", has_text="result").click()
    got = Path(download.value.path()).read_bytes()
    records = read_records(got)
    assert sorted(r.taskno for r in records) == list(range(len(LINES)))
    for r in records:
        assert r.data == md5(LINES[r.taskno].encode() + b"\n")
    assert f"{id} complete {len(LINES)} {len(LINES)} admin-1 " in owen(cluster, "jobs")


def test_a_job_is_stopped_and_continued_from_the_page(cluster, page):
    open_monitors(page, cluster)
    lines = "".join(f"slow {i}\n" for i in range(16)).encode()
    id = make_filesplit_job(page, "slow", lines, "{ sleep 1; md5sum }")
    row = page.locator(f'[data-job="{id}"]')
    expect(row).to_have_attribute("data-state", "running")
    row.locator('[data-act="stop"]').click()
    expect(row).to_have_attribute("data-state", "stopped")
    assert f"{id} stopped " in owen(cluster, "jobs")
    expect(row.locator(".why")).not_to_be_empty()
    time.sleep(2.5)  # the attempts running when it stopped finish; no new one starts
    held = owen(cluster, "jobs")
    time.sleep(1.5)
    assert owen(cluster, "jobs") == held
    row.locator('[data-act="continue"]').click()
    expect(row).to_have_attribute("data-state", "running")
    expect(row).to_have_attribute("data-state", "complete", timeout=60000)
    assert f"{id} complete 16 16 " in owen(cluster, "jobs")


def test_bad_input_shows_the_schedulers_error_and_changes_nothing(cluster, page):
    open_monitors(page, cluster)
    before = owen(cluster, "jobs")
    form = page.locator("#job-form")
    form.locator('input[name="file"]').set_input_files(
        {"name": "empty", "mimeType": "text/plain", "buffer": b""})
    form.locator('button[type="submit"]').click()
    error = page.locator("#job-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("filesplit: the input file empty is empty")
    assert owen(cluster, "jobs") == before
    form.locator('input[name="kind"][value="job"]').check()
    form.locator('textarea[name="spec"]').fill("(job (task exec md5sum)")
    form.locator('button[type="submit"]').click()
    expect(error).not_to_contain_text("is empty")
    expect(error).to_contain_text("job")
    said = error.inner_text()
    assert "parse" in said or "unbalanced" in said or "(" in said, said
    assert owen(cluster, "jobs") == before
    assert page.locator("#job-made").is_hidden()


def test_a_sigkilled_worker_turns_disconnected_within_5_seconds(cluster, page):
    open_monitors(page, cluster)
    worker = start_worker(cluster["home"], cluster["sched"].address, cluster["tmp"] / "wk",
                          "wk")
    row = page.locator('[data-node="wk"]')
    expect(row).to_have_attribute("data-state", "idle")
    worker.kill(signal.SIGKILL)
    started = time.monotonic()
    expect(row).to_have_attribute("data-state", "disconnected", timeout=5000)
    assert time.monotonic() - started < 5
    expect(row).to_contain_text("since")
    page.screenshot(path=str(ARTIFACTS / "disconnected-worker.png"))
    row.locator('[data-act="delnode"]').click()
    expect(row).to_have_count(0)
    assert "wk " not in owen(cluster, "nodes")


def test_a_suspended_node_leaves_the_working_set_and_comes_back(cluster, page):
    open_monitors(page, cluster)
    row = page.locator('[data-node="w1"]')
    row.locator('[data-act="suspend"]').click()
    expect(row.locator(".badge.suspended")).to_be_visible()
    assert "w0" in page.locator("#global-group").inner_text()
    assert "w1" not in page.locator("#global-group").inner_text().split()
    row.locator('[data-act="resume"]').click()
    expect(row.locator(".badge.suspended")).to_have_count(0)
    page.locator('#group-form button[data-verb="all"]').click()
    expect(page.locator("#global-group")).to_have_text("all")


def test_geryon_load_makes_new_disks_appear(cluster, page):
    open_monitors(page, cluster)
    expect(page.locator('[data-cpu="node0"]')).to_be_visible()
    expect(page.locator('[data-host="node0"]')).to_contain_text("chunks")
    corpus = make_corpus(cluster["tmp"] / "corpus", files=20, words=200)
    geryon(cluster, "load", "--app", "mail", str(corpus))
    geryon(cluster, "refresh")
    disk = page.locator('[data-disk="d0.mail"]')
    expect(disk).to_be_visible()
    expect(disk).to_have_attribute("data-state", "live")
    expect(disk.locator(".bar")).to_contain_text("of 16.0 MiB")
    page.locator("#cluster").scroll_into_view_if_needed()


def test_a_mapreduce_shows_its_phases_pass(cluster, page):
    open_monitors(page, cluster)
    if not page.locator('[data-disk="d0.mail"]').count():
        corpus = make_corpus(cluster["tmp"] / "corpus2", files=20, words=200)
        geryon(cluster, "load", "--app", "mail", str(corpus))
        geryon(cluster, "refresh")
    expect(page.locator('[data-disk="d0.mail"]')).to_be_visible()
    # Every phase the page shows for the job is noted as it is drawn.
    page.evaluate("""() => { window.phases = [];
      new MutationObserver(() => {
        for (const el of document.querySelectorAll('[data-mr="mr-web"]')) {
          const p = el.dataset.state + ':' + el.dataset.phase;
          if (window.phases[window.phases.length - 1] !== p) window.phases.push(p);
        }
      }).observe(document.body, {childList: true, subtree: true}); }""")
    geryon(cluster, "mapreduce", "--name", "mr-web", "-R", "2",
           "{ sleep 2; idx /n/d0.mail/*/*/* }", "{ sleep 2; agg }", "d0.mail", timeout=180)
    row = page.locator('[data-mr="mr-web"]')
    expect(row).to_have_attribute("data-state", "done", timeout=30000)
    phases = page.evaluate("window.phases")
    assert "running:map" in phases and "running:reduce" in phases, phases
    assert phases.index("running:map") < phases.index("running:reduce"), phases


def test_the_page_fits_a_400_pixel_window(cluster, page):
    page.set_viewport_size({"width": 400, "height": 800})
    open_monitors(page, cluster)
    expect(page.locator('[data-job]').first).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 400
    for sel in ["#job-form", '[data-node="w0"]', "#cluster"]:
        box = page.locator(sel).first.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 400, sel
    page.set_viewport_size({"width": 1280, "height": 800})
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "monitors-1280x800.png"))
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    page.set_viewport_size({"width": 400, "height": 800})


def test_an_unreachable_scheduler_is_said_plainly(cluster, another_web, page):
    gone = subprocess.run(["python3", "-c", "import socket; s = socket.socket(); "
                           "s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"],
                          capture_output=True, text=True).stdout.strip()
    web = another_web(cluster["home"], {**cluster["env"], "GERYON_SCHED": f"tcp!127.0.0.1!{gone}"})
    page.goto(web.url)
    banner = page.locator("#banner-sched")
    expect(banner).to_contain_text("Scheduler unreachable")
    expect(banner).to_contain_text("connection refused; is the server running there?")
    expect(page.locator('[data-cpu="node0"]')).to_be_visible()  # the registry still is


def test_uploads_and_fields_are_bounded(cluster):
    web = start_web(cluster["home"], cluster["tmp"], cluster["env"], ("--upload-max", "1K"))
    try:
        token = web.url.split("token=")[1]
        boundary = "xyzzy"

        def form(*parts):
            body = b""
            for name, value, filename in parts:
                body += f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"".encode()
                if filename:
                    body += f"; filename=\"{filename}\"".encode()
                body += b"\r\n\r\n" + value + b"\r\n"
            return body + f"--{boundary}--\r\n".encode()

        headers = {"X-Geryon-Token": token,
                   "Content-Type": f"multipart/form-data; boundary={boundary}"}
        before = owen(cluster, "jobs")
        status, body = http(web.base + "/api/jobs", "POST", headers, form(
            ("kind", b"filesplit", None), ("jobtype", b"test", None),
            ("file", b"x\n" * 1000, "big")))
        assert (status, json.loads(body)["error"]) == (
            400, "new job: the files are larger than 1024 bytes in all")
        status, body = http(web.base + "/api/jobs", "POST", headers, form(
            ("kind", b"job", None), ("spec", b"(" * 70000, None)))
        assert status == 400 and "longer than 65536 bytes" in json.loads(body)["error"]
        status, body = http(web.base + "/api/ctl", "POST",
                            {"X-Geryon-Token": token, "Content-Type": "application/json"},
                            json.dumps({"message": "teardown"}).encode())
        assert status == 400 and "not a control of this page" in json.loads(body)["error"]
        assert owen(cluster, "jobs") == before
    finally:
        web.stop()


def test_the_token_grants_only_the_roles_of_the_servers_certificate(cluster, another_web, page,
                                                                    tmp_path):
    watcher = member_home(cluster["home"], tmp_path / "watcher", "watcher", "monitor")
    web = another_web(watcher, cluster["env"])
    before = owen(cluster, "jobs")
    page.goto(web.url)
    expect(page.locator("#me")).to_have_text("watcher · monitor")
    expect(page.locator('[data-node="w0"]')).to_be_visible()  # monitor may read
    page.locator('#job-form input[name="file"]').set_input_files(
        {"name": "t", "mimeType": "text/plain", "buffer": b"a\n"})
    page.locator('#job-form button[type="submit"]').click()
    expect(page.locator("#job-error")).to_contain_text(
        "/admin/clone: permission denied; read needs role submit")
    page.locator('[data-node="w0"] [data-act="suspend"]').click()
    expect(page.locator("#node-error")).to_contain_text(
        "/admin/ctl: permission denied; write needs role admin")
    assert owen(cluster, "jobs") == before
    assert "state idle" in owen(cluster, "nodes") and \
        page.locator("#global-group").inner_text() == "all"
