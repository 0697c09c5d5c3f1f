"""The upload program: copy a model to an OCI modelcar image or S3 and register it.

Run it as ``python -m model_registry_upload`` (see :mod:`.cli`).
"""
