"""Apache Iceberg tables kept current from the files DMS writes to S3.

DMS writes each table as files: a LOAD snapshot, then CDC files whose rows start with the
operation (``I``, ``U``, ``D``). This package turns them into one Iceberg table per source table
whose rows equal the source as of the last change applied, as a consumer would otherwise write a
merge job for:

- ``dms_files``: which objects of a table to apply, in DMS's order.
- ``readers``: each object as Arrow record batches, typed (Parquet as DMS typed it; CSV from a
  schema or its header).
- ``changes``: a batch of changes reduced to the last one per key.
- ``catalogs``: the Iceberg catalog (SQL locally, Glue on AWS) and S3 access for it.
- ``apply``: the Iceberg table built from the LOAD files and kept current from the CDC files,
  one atomic commit per step, each recording the S3 objects it applied.
- ``position_deletes``: where a batch's keys are in the data files, and the position delete
  files that delete them (merge-on-read).
- ``row_delta``: the commit of data and delete files added and removed as one snapshot, which
  pyiceberg does not have.

The Prefect flow that runs it per table is ``flows.lake``.
"""
