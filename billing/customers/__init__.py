"""Customers: the people and companies a merchant bills."""
