"""localdms: a local engine that speaks the AWS DMS API and really copies PostgreSQL to S3."""
