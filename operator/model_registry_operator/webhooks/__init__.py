"""Admission webhooks for ModelRegistry: what the validating and mutating webhooks decide (pure,
:mod:`.admission`), the AdmissionReview in and out (pure, :mod:`.review`) and their serving
certificate (:mod:`.certificates`). Their server, on every replica, is
:mod:`..handlers.webhooks`."""
