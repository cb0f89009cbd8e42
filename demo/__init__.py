"""``make demo`` and ``make serve``: the whole job on one machine, no AWS, no Docker."""

DEMO_BUCKET_FOLDER = "raw"
"""The demo's target endpoint writes under ``s3://postgres-repo/raw/``: a folder per source in one
bucket, as most teams lay out their lake. The flow reads it from the endpoint; the config names
only the bucket."""
