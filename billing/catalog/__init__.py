"""The catalog: meters, plans, coupons and tax rates, the merchant-level objects subscriptions are priced by.

The mathematics (validation of currencies, amounts, tiers, charges, coupons, tax rates and intervals, and
pricing) lives in the pure package `plans`; this package stores the objects, enforces what depends on state
(unique codes, meters that exist, pricing frozen once in use, archived objects refused) and records events.
"""
