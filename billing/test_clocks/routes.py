from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter

from billing.api.context import RequestContext
from billing.api.crud import list_and_retrieve
from billing.api.openapi import ERROR_RESPONSES
from billing.api.schemas import DeletedObject
from billing.test_clocks import service
from billing.test_clocks.delete import delete_test_clock
from billing.test_clocks.schemas import TestClock, TestClockAdvance, TestClockCreate, TestClockList
from billing.worker.jobs import enqueue_advance

TestClockId = Annotated[str, PathParameter(description="A test clock id, clk_...", max_length=64)]


def _not_in_production(ctx: RequestContext) -> None:
    service.refuse_in_production(ctx.services.settings.is_production)


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

    list_, retrieve = list_and_retrieve(
        noun="test clock",
        list_summary="List test clocks",
        url="/v1/test_clocks",
        list_type=TestClockList,
        item_type=TestClock,
        render=service.render_test_clock,
        list_rows=service.list_test_clocks,
        get_row=service.get_test_clock,
        id_param="test_clock_id",
        id_type=TestClockId,
        check=_not_in_production,
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
