"""The domain layer: entities, validation and services. Imports no grpc, ray, sqlmodel or boto3,
so it can be unit-tested with in-memory fakes."""
