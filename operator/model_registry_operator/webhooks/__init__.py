"""Admission webhooks for ModelRegistry: what the validating and mutating webhooks decide (pure,
:mod:`.admission`) and their serving certificate (:mod:`.certificates`). The kopf handlers that
serve them are in :mod:`..handlers.webhooks`."""
