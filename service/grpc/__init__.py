"""The gRPC API and health. The health services' names live here, where `podium health`
reads them without loading the server."""

API_HEALTH = "podium.api"
INGEST_HEALTH = "podium.ingest"
"""Health services beside "" (the API of this process, or its consumers when it runs only
them): `podium.api` SERVING once queries answer, `podium.ingest` while ingest keeps up."""
