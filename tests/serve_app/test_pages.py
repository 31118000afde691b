"""The browser pages' routes (serve_app/pages.py) without a browser: what is served, from where,
under which policy, and that the files ship in a wheel. The browser itself: test_pages_browser.py."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from serve_app.http import create_http_app
from serve_app.pages import DOCS_ASSETS_PREFIX, PLAYGROUND_DIR, PLAYGROUND_FILES
from serve_app.protocol import GenerateRequest
from tests.serve_app.fakes import fixed_image_model, make_http_client, make_service

REPO = Path(__file__).resolve().parents[2]


class _Links(HTMLParser):
    """The URLs an HTML page makes the browser load (src and href) and its form controls' names."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []
        self.names: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("src", "href"):
            if attrs.get(key):
                self.urls.append(attrs[key])
        if tag in ("input", "textarea", "select") and attrs.get("name"):
            self.names.append(attrs["name"])
        if attrs.get("id"):
            self.ids.add(attrs["id"])


def _links(html: str) -> _Links:
    parser = _Links()
    parser.feed(html)
    return parser


@pytest.fixture()
def client() -> TestClient:
    return make_http_client(make_service(fixed_image_model(b"img")))


def test_playground_page_loads_only_its_own_files_under_a_same_origin_policy(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    for directive in ("default-src 'none'", "script-src 'self'", "connect-src 'self'", "img-src 'self' data:"):
        assert directive in csp
    links = _links(response.text)
    fetched = [url for url in links.urls if not url.startswith("data:")]
    assert sorted(fetched) == ["docs", "playground/playground.css", "playground/playground.js"]
    for url, media in (("playground/playground.css", "text/css"), ("playground/playground.js", "text/javascript")):
        asset = client.get("/" + url)
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(media)
        assert asset.headers["x-content-type-options"] == "nosniff"


def test_page_files_name_no_other_origin():
    for name in PLAYGROUND_FILES:
        text = (PLAYGROUND_DIR / name).read_text()
        assert "://" not in text, f"{name} refers to another origin"
        assert "@import" not in text and "url(" not in text, f"{name} loads a stylesheet resource"


def test_form_controls_are_request_fields_each_with_a_label_and_an_error_slot():
    # The page maps error.field straight to "<field>-error"; this keeps the page and the API in step.
    html = (PLAYGROUND_DIR / "index.html").read_text()
    links = _links(html)
    assert set(links.names) <= set(GenerateRequest.model_fields), set(links.names) - set(GenerateRequest.model_fields)
    assert {"prompt", "negative_prompt", "seed", "num_inference_steps", "width", "height", "output_format"} <= set(
        links.names
    )
    for name in links.names:
        assert f"{name}-error" in links.ids, name
        assert re.search(rf'<label for="{name}"', html), f"{name} has no label"


def test_playground_off_leaves_docs_and_the_api():
    service = make_service(fixed_image_model(b"img"))
    off = make_http_client(service, playground=False)
    assert off.get("/").status_code == 404
    assert off.get("/playground/playground.js").status_code == 404
    assert off.get("/docs").status_code == 200
    assert off.post("/predict", json={"prompt": "a fox"}).status_code == 200


def test_docs_load_swagger_ui_from_this_service(client):
    response = client.get("/docs")
    assert response.status_code == 200
    assert "connect-src 'self'" in response.headers["content-security-policy"]
    links = _links(response.text)
    assert links.urls and all(url.startswith(DOCS_ASSETS_PREFIX + "/") for url in links.urls), links.urls
    for url in links.urls:
        assert client.get(url).status_code == 200, url
    assert "url: '/openapi.json'" in response.text
    # No badge that would post the schema to an outside validator.
    assert '"validatorUrl": null' in response.text
    # FastAPI's CDN pages are gone: /redoc is not offered at all.
    assert client.get("/redoc").status_code == 404
    assert "/docs" not in client.get("/openapi.json").json()["paths"]


def test_docs_links_carry_the_route_prefix():
    service = make_service(fixed_image_model(b"img"))
    app = create_http_app(service, lambda: True, max_body_bytes=4096)
    page = TestClient(app, root_path="/sd").get("/docs").text
    assert f"/sd{DOCS_ASSETS_PREFIX}/swagger-ui-bundle.js" in page
    assert "url: '/sd/openapi.json'" in page


@pytest.mark.parametrize(
    "path",
    [
        "/playground/index.html",  # the page is served at / only
        "/playground/..%2Fpages.py",
        "/playground/missing.js",
        f"{DOCS_ASSETS_PREFIX}/index.html",  # shipped by the bundle, not served
        f"{DOCS_ASSETS_PREFIX}/..%2F..%2F__init__.py",
    ],
)
def test_only_listed_files_are_served(client, path):
    assert client.get(path).status_code == 404


def test_a_wheel_ships_the_page_files(tmp_path):
    # A non-editable install (the container image) has only what the wheel carries.
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "serve_app", source / "serve_app", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in PLAYGROUND_FILES:
        assert f"serve_app/playground/{name}" in names
