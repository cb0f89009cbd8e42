"""Throwaway servers for tests, benchmarks and the demo: PostgreSQL and an S3-compatible store."""
