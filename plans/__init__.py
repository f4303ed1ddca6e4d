"""Catalog mathematics, pure: money and rounding, pricing models, calendars, proration, coupons, taxes, totals.

Plain functions on plain values (ints of minor units, Decimals, Fractions, aware datetimes); no I/O, and no
imports from the rest of the engine. Invalid input raises `plans.errors.CatalogError` naming the field.
"""
