"""The interactive API page at /api: Swagger UI, installed by
tools/install-apidoc into `[https] apidoc_dir` (npm, pinned by
tools/apidoc/package-lock.json; the download is kept in target/apidoc-npm),
rendered in Chromium from /api/v1/openapi.json, trying an operation out with
a pasted token, and nothing fetched from another origin (CDP's Network
events). Without the directory, /api is the server-rendered reference. The
viewer's files: only the listed names, no traversal, no links."""

import http.client
import json
import os
import shutil
import ssl
import subprocess
import warnings

import pytest
import requests

from conftest import OWNER, PASSWORD, ROOT
from web import SHOTS, chromium, new_page, shoot, sign_in_past_offer, with_axe  # noqa: F401

VIEWER_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "LICENSE", "NOTICE",
                "swagger-ui-bundle.js.LICENSE.txt")


@pytest.fixture(autouse=True)
def quiet_tls():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """Swagger UI installed by the script, once for the module."""
    where = tmp_path_factory.mktemp("apidoc")
    r = subprocess.run([str(ROOT / "tools" / "install-apidoc"), str(where)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"tools/install-apidoc failed: {r.stdout}{r.stderr}"
    assert sorted(os.listdir(where)) == sorted(VIEWER_FILES)
    return where


def viewer_box(box_factory, directory):
    return box_factory(f'[https]\napidoc_dir = "{directory}"\n')


def get(box, path, **kw):
    return requests.get(box.url + path, verify=False, allow_redirects=False, timeout=30, **kw)


def raw_get(box, path):
    """GET with the path sent exactly as written (no client normalising
    `..` or percent-escapes)."""
    conn = http.client.HTTPSConnection("127.0.0.1", box.https_port, timeout=30,
                                       context=ssl._create_unverified_context())
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def axe_outside_viewer(page):
    """axe-core on Coffer's own parts of the page (Swagger UI's markup is
    not ours to fix)."""
    return page.evaluate(
        """async () => {
            const r = await axe.run({exclude: [['#swagger-ui']]}, {resultTypes: ['violations']});
            return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
                .map(v => ({id: v.id, help: v.help, targets: v.nodes.slice(0, 5).map(n => n.target.join(' '))}));
        }"""
    )


def test_swagger_ui_renders_and_tries_an_operation_with_a_pasted_token(box_factory, installed, chromium):
    box = viewer_box(box_factory, installed)
    token = box.token(OWNER)
    context = chromium.new_context(base_url=box.url, ignore_https_errors=True,
                                   viewport={"width": 1280, "height": 900})
    with_axe(context)
    page = context.new_page()
    page.set_default_timeout(20000)
    cdp = context.new_cdp_session(page)
    requested, problems = [], []
    cdp.on("Network.requestWillBeSent", lambda e: requested.append(e["request"]))
    cdp.send("Network.enable")
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))

    # Signed out, so only the pasted token can make "Try it out" succeed.
    page.goto("/api")
    page.wait_for_selector("#swagger-ui .opblock")
    login = page.locator(".opblock-post .opblock-summary-path[data-path='/auth/login']")
    assert login.count() == 1, "POST /auth/login is not rendered"
    assert page.locator("#swagger-ui .opblock").count() > 40
    assert page.locator("#swagger-ui .information-container .title").inner_text().startswith("Coffer REST API")
    assert axe_outside_viewer(page) == []

    page.click("#swagger-ui button.authorize")
    page.fill(".auth-container input", token)
    page.click(".auth-container .auth-btn-wrapper button.authorize")
    page.click(".auth-container .auth-btn-wrapper button.btn-done")
    me = page.locator(".opblock-get", has=page.locator(".opblock-summary-path[data-path='/me']"))
    me.locator(".opblock-summary").click()
    me.locator("button.try-out__btn").click()
    me.locator("button.execute").click()
    status = me.locator(".live-responses-table tbody td.response-col_status")
    status.wait_for()
    assert status.inner_text().strip().startswith("200"), status.inner_text()
    answer = me.locator(".live-responses-table tbody td.response-col_description").inner_text()
    assert f'"username": "{OWNER}"' in answer, answer
    shoot(page, "40-api-viewer")

    origin = box.url
    calls = [r for r in requested if r["url"].startswith(origin + "/api/v1/me")]
    assert calls and calls[-1]["headers"].get("Authorization") == f"Bearer {token}", calls
    elsewhere = sorted({r["url"] for r in requested
                        if not r["url"].startswith(origin + "/") and not r["url"].startswith("data:")})
    assert elsewhere == [], f"requests to other origins: {elsewhere}"
    assert any("/api/viewer/swagger-ui-bundle.js?v=" in r["url"] for r in requested)
    # No CSP refusal (the policy is the pages' own: no inline script or
    # style) and no script error.
    assert problems == [], problems
    context.close()


def test_the_viewer_page_inside_the_app_keeps_the_navigation(box_factory, installed, chromium):
    box = viewer_box(box_factory, installed)
    page = new_page(chromium, box)
    sign_in_past_offer(page, OWNER, PASSWORD)
    page.goto("/api")
    page.wait_for_selector("#swagger-ui .opblock")
    assert page.locator("nav.main a[aria-current='page']").inner_text() == "API"
    assert "not installed" not in page.inner_text("main")
    page.click("a:has-text('Plain reference')")
    page.wait_for_selector("section.route#post-auth-login")
    assert page.locator("#swagger-ui").count() == 0
    assert "not installed" not in page.inner_text("main")
    page.context.close()


def test_without_the_viewer_api_is_the_server_rendered_reference(box_factory, chromium, tmp_path):
    box = viewer_box(box_factory, tmp_path / "no-viewer-here")
    page = new_page(chromium, box)
    page.goto("/api")
    page.wait_for_selector("section.route#post-auth-login")
    text = page.inner_text("main")
    assert "The interactive viewer is not installed on this box" in text
    assert page.locator("#swagger-ui").count() == 0
    assert page.locator("script[src^='/api/viewer/']").count() == 0
    assert get(box, "/api/viewer/LICENSE").status_code == 404
    page.context.close()


def test_viewer_files_are_served_with_their_types_and_a_long_cache(box_factory, installed):
    box = viewer_box(box_factory, installed)
    page = get(box, "/api").text
    assert '<div id="swagger-ui"' in page
    # Every script has a source; no inline style either.
    assert "<script>" not in page and "style=" not in page and "<style" not in page
    types = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css",
             "LICENSE": "text/plain", "NOTICE": "text/plain",
             "swagger-ui-bundle.js.LICENSE.txt": "text/plain"}
    for name, kind in types.items():
        r = get(box, f"/api/viewer/{name}?v=1")
        assert r.status_code == 200, name
        assert r.headers["Content-Type"].startswith(kind), (name, r.headers["Content-Type"])
        assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert "script-src 'self'" in r.headers["Content-Security-Policy"]
        assert r.content == (installed / name).read_bytes()
    # The page links the script and the stylesheet with a version stamp.
    assert "/api/viewer/swagger-ui-bundle.js?v=" in page and "/api/viewer/swagger-ui.css?v=" in page
    r = get(box, "/assets/apidoc.js")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/javascript")
    assert "validatorUrl: null" in r.text and "queryConfigEnabled: false" in r.text


def test_viewer_files_refuse_traversal_unknown_names_and_links(box_factory, installed, tmp_path):
    directory = tmp_path / "apidoc"
    shutil.copytree(installed, directory)
    (tmp_path / "secret.txt").write_text("not for the web")
    (directory / "index.html").write_text("<script>alert(1)</script>")
    box = viewer_box(box_factory, directory)
    for path in ("/api/viewer/../viewer/LICENSE", "/api/viewer/..%2FLICENSE",
                 "/api/viewer/%2e%2e%2f%2e%2e%2fsecret.txt", "/api/viewer/..%2f..%2fsecret.txt",
                 "/api/viewer/%2E%2E", "/api/viewer/LICENSE%00", "/api/viewer/LICENSE/",
                 "/api/viewer/index.html", "/api/viewer/swagger-ui.css.map", "/api/viewer/license",
                 "/api/viewer/", "/api/viewer/./LICENSE", "/api/viewer/sub/LICENSE"):
        status, body = raw_get(box, path)
        assert status in (400, 404), (path, status)
        assert b"not for the web" not in body and b"alert(1)" not in body and b"Apache License" not in body, path
    assert raw_get(box, "/api/viewer/LICENSE")[0] == 200

    # A link in a listed file's place is refused, even one to a file beside it.
    (directory / "NOTICE").unlink()
    (directory / "NOTICE").symlink_to(tmp_path / "secret.txt")
    status, body = raw_get(box, "/api/viewer/NOTICE")
    assert status == 404 and b"not for the web" not in body
    (directory / "swagger-ui-bundle.js.LICENSE.txt").unlink()
    (directory / "swagger-ui-bundle.js.LICENSE.txt").symlink_to(directory / "LICENSE")
    assert raw_get(box, "/api/viewer/swagger-ui-bundle.js.LICENSE.txt")[0] == 404
    assert "swagger-ui" in get(box, "/api").text
    # Without the licence (here: a link in its place) there is no viewer.
    (directory / "LICENSE").unlink()
    (directory / "LICENSE").symlink_to(installed / "LICENSE")
    assert raw_get(box, "/api/viewer/LICENSE")[0] == 404
    page = get(box, "/api").text
    assert "The interactive viewer is not installed on this box" in page
    assert "/api/viewer/" not in page
    # The refusals say why as JSON, like any unknown route under /api/.
    r = get(box, "/api/viewer/NOTICE")
    assert r.status_code == 404 and json.loads(r.text)["error"] == "not_found"
