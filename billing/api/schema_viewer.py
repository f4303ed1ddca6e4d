"""The /schema page: the OpenAPI document in Redoc, served entirely from this package (works offline).

The viewer is Redoc's standalone bundle, vendored byte for byte from the npm registry (`billing/api/viewer/`:
version and integrity in REDOC below, its MIT LICENSE and the notices of what it bundles beside it). The page
refers to nothing but this server: the bundle at /schema/viewer/redoc.standalone.js, the document at
/schema/openapi.json, and a Content-Security-Policy that keeps the browser on this origin (the bundle would
otherwise fetch Redocly's logo from its CDN for the sidebar footer; blocked, it hides itself).
"""

from __future__ import annotations

import html
from functools import cache
from importlib.resources import files
from typing import Annotated, Any

from litestar import Request, Response, Router, get
from litestar.exceptions import NotFoundException
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.params import PathParameter

# What is vendored: `npm pack redoc@2.5.4`, dist.integrity as the registry publishes it.
REDOC = {
    "package": "redoc",
    "version": "2.5.4",
    "integrity": "sha512-M6jWhG1qoBnH6TFmzJnstyCZ87HmOY/UzDm78mHiYihEdlV/YcS9ogOo1NlElnJMeLsyxHFe2yFc4sNjHTrABQ==",
}
ASSET_ROUTE = "/schema/viewer"
BUNDLE = "redoc.standalone.js"
# Every file of the viewer folder that is served, with its media type.
ASSETS = {
    BUNDLE: "text/javascript",
    "LICENSE": "text/plain",
    "redoc.standalone.js.LICENSE.txt": "text/plain",
}
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; base-uri 'none'"
)


@cache
def _asset(name: str) -> bytes:
    return (files("billing.api") / "viewer" / name).read_bytes()


def viewer_asset(name: Annotated[str, PathParameter(max_length=64)]) -> Response[bytes]:
    """A file of the vendored viewer (cached a day by browsers: its name does not change between versions)."""
    media_type = ASSETS.get(name)
    if media_type is None:
        raise NotFoundException()
    return Response(_asset(name), media_type=media_type, headers={"cache-control": "public, max-age=86400"})


class OfflineRedoc(OpenAPIRenderPlugin):
    """Renders /schema (and /schema/redoc) with the vendored Redoc."""

    def __init__(self) -> None:
        super().__init__(path=["/", "/redoc"], favicon="<link rel='icon' href='data:,'>", style="")

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        title = html.escape(str(openapi_schema.get("info", {}).get("title", "API")))
        spec_url = html.escape(self.get_openapi_json_route(request))
        page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">
<title>{title} · API 参考</title>
{self.favicon}
<style>body {{ margin: 0; }} .waiting {{ font-family: system-ui, sans-serif; padding: 2rem; }}</style>
</head>
<body>
<noscript><p class="waiting">This reference needs JavaScript; the document itself is at
<a href="{spec_url}">{spec_url}</a>. 本页面需要 JavaScript；API 文档本身位于 <a href="{spec_url}">{spec_url}</a>。</p></noscript>
<redoc spec-url="{spec_url}"></redoc>
<script src="{ASSET_ROUTE}/{BUNDLE}"></script>
</body>
</html>
"""
        return page.encode()

    def receive_router(self, router: Router) -> None:
        # The OpenAPI router is mounted at /schema (billing.api.openapi), hence ASSET_ROUTE.
        router.register(
            get("/viewer/{name:str}", include_in_schema=False, sync_to_thread=False)(viewer_asset)
        )
