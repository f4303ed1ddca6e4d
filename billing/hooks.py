"""Typed hook points: how one context tells the others that something happened to it, without importing them.

The context where a thing happens declares the hook point and its event (a frozen dataclass, or a mutable one
when the point asks its listeners for an answer) in its own `hooks.py` and fires it; the listening contexts
import that declaration (downward), and `billing/wiring.py`, the one visible wiring place, subscribes them. A
listener runs inside the firing transaction (its writes and outbox events commit or roll back with the change
that fired it), in the order the wiring subscribed it.

    invoice_paid: Hook[InvoicesPaid] = Hook("invoice_paid")
    await invoice_paid.fire(InvoicesPaid(session, [invoice], clock))
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Event = TypeVar("Event")
Listener = Callable[[Event], Awaitable[None]]


class Hook(Generic[Event]):
    def __init__(self, name: str) -> None:
        self.name = name
        self._listeners: list[Callable[[Event], Awaitable[None]]] = []

    def subscribe(self, listener: Callable[[Event], Awaitable[None]]) -> None:
        """Add a listener (once: subscribing the same function again does nothing)."""
        if listener not in self._listeners:
            self._listeners.append(listener)

    @property
    def listeners(self) -> tuple[Callable[[Event], Awaitable[None]], ...]:
        return tuple(self._listeners)

    async def fire(self, event: Event) -> None:
        for listener in self._listeners:
            await listener(event)

    def __repr__(self) -> str:
        return f"Hook({self.name!r}, {len(self._listeners)} listeners)"
