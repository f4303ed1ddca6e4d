"""The finance console (SPEC §10): server-rendered pages at /console for a merchant's finance users."""
