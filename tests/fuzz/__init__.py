"""Fuzz suite: ModelRegistry and ModelUploadJob objects generated from the CRD schemas, made hostile."""
