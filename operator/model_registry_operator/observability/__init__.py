"""What the operator tells its operators: Prometheus metrics (:mod:`.metrics`, read from the
reconcilers by :mod:`.sources`), the endpoint serving them (:mod:`.endpoint`, with the
authentication of :mod:`.auth`) and the log format (:mod:`.logs`)."""
