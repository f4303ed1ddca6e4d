from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter

from billing.api.context import RequestContext
from billing.api.openapi import ERROR_RESPONSES, Limit, StartingAfter
from billing.api.schemas import DeletedObject, page
from billing.db.pagination import PageRequest
from billing.test_clocks import service
from billing.test_clocks.delete import delete_test_clock
from billing.test_clocks.schemas import TestClock, TestClockAdvance, TestClockCreate, TestClockList
from billing.worker.jobs import enqueue_advance

TestClockId = Annotated[str, PathParameter(description="A test clock id, clk_...", max_length=64)]


class TestClocksController(Controller):
    __test__ = False
    path = "/test_clocks"
    tags = ["test_clocks"]  # noqa: RUF012

    @post("/", status_code=200, responses=ERROR_RESPONSES, summary="Create a test clock")
    async def create(
        self, ctx: NamedDependency[RequestContext], data: JSONBody[TestClockCreate]
    ) -> TestClock:
        service.refuse_in_production(ctx.services.settings.is_production)
        return service.render_test_clock(await service.create_test_clock(ctx.session, ctx.merchant_id, data))

    @get("/", responses=ERROR_RESPONSES, summary="List test clocks")
    async def list_(
        self, ctx: NamedDependency[RequestContext], limit: Limit = 10, starting_after: StartingAfter = None
    ) -> TestClockList:
        service.refuse_in_production(ctx.services.settings.is_production)
        result = await service.list_test_clocks(
            ctx.session, ctx.merchant_id, PageRequest(limit, starting_after)
        )
        return page(
            TestClockList,
            [service.render_test_clock(c) for c in result.rows],
            has_more=result.has_more,
            url="/v1/test_clocks",
        )

    @get("/{test_clock_id:str}", responses=ERROR_RESPONSES, summary="Retrieve a test clock")
    async def retrieve(self, ctx: NamedDependency[RequestContext], test_clock_id: TestClockId) -> TestClock:
        service.refuse_in_production(ctx.services.settings.is_production)
        return service.render_test_clock(
            await service.get_test_clock(ctx.session, ctx.merchant_id, test_clock_id)
        )

    @post(
        "/{test_clock_id:str}/advance",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Advance a test clock; answers at once with status advancing",
    )
    async def advance(
        self,
        ctx: NamedDependency[RequestContext],
        test_clock_id: TestClockId,
        data: JSONBody[TestClockAdvance],
    ) -> TestClock:
        service.refuse_in_production(ctx.services.settings.is_production)
        clock = await service.request_advance(ctx.session, ctx.merchant_id, test_clock_id, data.frozen_time)
        redis, clock_id, requested_at = ctx.services.redis, clock.id, clock.advance_requested_at

        async def enqueue() -> None:
            await enqueue_advance(redis, ctx.services.queue_name, clock_id, requested_at)

        ctx.after_commit.append(enqueue)
        return service.render_test_clock(clock)

    @delete(
        "/{test_clock_id:str}",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Delete a test clock and its customers",
    )
    async def delete_(
        self, ctx: NamedDependency[RequestContext], test_clock_id: TestClockId
    ) -> DeletedObject:
        service.refuse_in_production(ctx.services.settings.is_production)
        clock = await delete_test_clock(ctx.session, ctx.merchant_id, test_clock_id)
        return DeletedObject(id=clock.id, object="test_clock")
