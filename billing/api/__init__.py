"""The HTTP layer: conventions implemented once (auth, errors, idempotency, lists), then thin resource routes."""
