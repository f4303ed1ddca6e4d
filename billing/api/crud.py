"""The list and retrieve routes every resource has, written once: a resource names its list type, its renderer,
its use cases and its filters, and gets the two Litestar handlers, with the same parameters, OpenAPI document and
unknown-parameter refusal as handlers written out by hand.

The handlers' signatures are built from the filters given (Litestar reads a handler's parameters from its
signature), so each filter is a query parameter declared with its own `Annotated[..., QueryParameter(...)]`."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any

from litestar import get
from litestar.di import NamedDependency
from litestar.handlers import HTTPRouteHandler
from litestar.params import QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from billing.api.context import RequestContext
from billing.api.openapi import ERROR_RESPONSES, Limit, StartingAfter
from billing.api.schemas import ListResponse, page
from billing.db.pagination import Page, PageRequest

# list_rows(session, merchant_id, page, **filters) -> one page of rows
ListRows = Callable[..., Awaitable[Page[Any]]]
# get_row(session, merchant_id, object_id) -> the row, or NotFound
GetRow = Callable[[AsyncSession, str, str], Awaitable[Any]]
# check(ctx): raises when the route is refused to this request (e.g. test clocks in production)
Check = Callable[[RequestContext], None]


def _no_check(_ctx: RequestContext) -> None:
    return None


# Filters many lists take, described alike.
OfCustomer = Annotated[str | None, QueryParameter(description="Only this customer's.", max_length=64)]
OfInvoice = Annotated[str | None, QueryParameter(description="Only this invoice's.", max_length=64)]

_CTX = inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=NamedDependency[RequestContext])


def _signed(fn: Callable[..., Awaitable[Any]], params: list[inspect.Parameter], returns: Any) -> None:
    """Give `fn` (a controller method taking **kwargs) the signature Litestar should parse."""
    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    fn.__signature__ = inspect.Signature([self_param, _CTX, *params], return_annotation=returns)  # type: ignore[attr-defined]
    fn.__annotations__ = {"ctx": _CTX.annotation, **{p.name: p.annotation for p in params}, "return": returns}


def list_route(
    *,
    summary: str,
    url: str,
    list_type: type[ListResponse[Any]],
    render: Callable[[Any], Any],
    list_rows: ListRows,
    filters: Mapping[str, Any] | None = None,
    path: str = "/",
    check: Check = _no_check,
) -> HTTPRouteHandler:
    """GET `path`: a page of `list_type` (limit, starting_after, then each filter: name -> its annotation, None
    when not sent), the rows from `list_rows` rendered one by one, once `check` let the request through."""

    async def list_(
        self: Any, ctx: RequestContext, limit: int, starting_after: str | None, **chosen: Any
    ) -> Any:
        check(ctx)
        result = await list_rows(ctx.session, ctx.merchant_id, PageRequest(limit, starting_after), **chosen)
        return page(list_type, [render(row) for row in result.rows], has_more=result.has_more, url=url)

    keyword = inspect.Parameter.KEYWORD_ONLY
    params = [
        inspect.Parameter("limit", keyword, default=10, annotation=Limit),
        inspect.Parameter("starting_after", keyword, default=None, annotation=StartingAfter),
        *(
            inspect.Parameter(name, keyword, default=None, annotation=hint)
            for name, hint in (filters or {}).items()
        ),
    ]
    _signed(list_, params, list_type)
    return get(path, responses=ERROR_RESPONSES, summary=summary)(list_)


def retrieve_route(
    *,
    summary: str,
    id_param: str,
    id_type: Any,
    item_type: type[Any],
    render: Callable[[Any], Any],
    get_row: GetRow,
    path: str = "",
    check: Check = _no_check,
) -> HTTPRouteHandler:
    """GET `path`/{`id_param`}: the one object, rendered, or NotFound, once `check` let the request through."""

    async def retrieve(self: Any, ctx: RequestContext, **path_params: str) -> Any:
        check(ctx)
        return render(await get_row(ctx.session, ctx.merchant_id, path_params[id_param]))

    _signed(
        retrieve, [inspect.Parameter(id_param, inspect.Parameter.KEYWORD_ONLY, annotation=id_type)], item_type
    )
    return get(f"{path}/{{{id_param}:str}}", responses=ERROR_RESPONSES, summary=summary)(retrieve)


def list_and_retrieve(
    *,
    noun: str,
    url: str,
    list_type: type[ListResponse[Any]],
    item_type: type[Any],
    render: Callable[[Any], Any],
    list_rows: ListRows,
    get_row: GetRow,
    id_param: str,
    id_type: Any,
    filters: Mapping[str, Any] | None = None,
    list_summary: str | None = None,
    path: str = "",
    check: Check = _no_check,
) -> tuple[HTTPRouteHandler, HTTPRouteHandler]:
    """The pair, for a controller body: `list_, retrieve = list_and_retrieve(noun="meter", ...)`; summaries
    "List meters, newest first" and "Retrieve a meter" unless `list_summary` says otherwise."""
    article = "an" if noun[0] in "aeiou" else "a"
    return (
        list_route(
            summary=list_summary or f"List {noun}s, newest first",
            url=url,
            list_type=list_type,
            render=render,
            list_rows=list_rows,
            filters=filters,
            path=path or "/",
            check=check,
        ),
        retrieve_route(
            summary=f"Retrieve {article} {noun}",
            id_param=id_param,
            id_type=id_type,
            item_type=item_type,
            render=render,
            get_row=get_row,
            path=path,
            check=check,
        ),
    )
