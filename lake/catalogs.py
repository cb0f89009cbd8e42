"""The Iceberg catalog the lake's tables are in, and the S3 access its files go through.

- ``sql``: pyiceberg's SQL catalog, the tables' pointers in a database (the demo's PostgreSQL,
  or SQLite for a try-out), their files in the warehouse, an ``s3://`` location.
- ``glue``: the AWS Glue Data Catalog (databases are the namespaces), as Athena, EMR and Redshift
  read it.

Both reach S3 with the credentials of the flow's ``AwsCredentials`` block (a boto3 session) and
the same S3 endpoint the flow's own S3 client uses (``AWS_ENDPOINT_URL_S3`` offline), given to
pyiceberg as its ``s3.*`` properties; Glue gets the session's credentials and region, and the
Glue endpoint of ``AWS_ENDPOINT_URL_GLUE`` when set.

Example:
    >>> import boto3
    >>> session = boto3.Session(aws_access_key_id="AK", aws_secret_access_key="SK",
    ...                         region_name="eu-west-1")
    >>> props = s3_properties(session, "http://127.0.0.1:9000")
    >>> props["s3.endpoint"], props["s3.region"], props["s3.access-key-id"]
    ('http://127.0.0.1:9000', 'eu-west-1', 'AK')
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pyiceberg.catalog import Catalog
from pyiceberg.io import FileIO, load_file_io

CatalogType = Literal["sql", "glue"]


def s3_properties(session: Any, endpoint_url: str | None) -> dict[str, str]:
    """pyiceberg's S3 properties for a boto3 session (frozen credentials) and S3 endpoint."""
    credentials = session.get_credentials()
    if credentials is None:
        raise ValueError(
            "no AWS credentials for the lake's S3 access: give the AwsCredentials block keys, "
            "a profile or a role"
        )
    frozen = credentials.get_frozen_credentials()
    props = {
        "s3.access-key-id": frozen.access_key,
        "s3.secret-access-key": frozen.secret_key,
        "s3.region": session.region_name or "us-east-1",
    }
    if frozen.token:
        props["s3.session-token"] = frozen.token
    if endpoint_url:
        props["s3.endpoint"] = endpoint_url
    return props


def open_catalog(
    kind: CatalogType,
    name: str,
    warehouse: str,
    session: Any,
    s3_endpoint_url: str | None,
    uri: str | None = None,
) -> Catalog:
    """The catalog, its FileIO set up for S3.

    Args:
        kind: ``sql`` or ``glue``.
        name: the catalog's name (the SQL catalog's rows are kept under it).
        warehouse: where new tables' files go, ``s3://bucket/prefix``.
        session: the boto3 session of the flow's credentials.
        s3_endpoint_url: the S3 endpoint (None for AWS's).
        uri: the SQL catalog's database (a SQLAlchemy URL); required for ``sql``.
    """
    props = {"warehouse": warehouse.rstrip("/"), **s3_properties(session, s3_endpoint_url)}
    if kind == "sql":
        if not uri:
            raise ValueError(
                "the sql catalog needs its database: set lake_catalog_uri (or "
                "DMS_LAKE_CATALOG_URI) to a SQLAlchemy URL, e.g. "
                "postgresql+psycopg://user:password@host/db or sqlite:///lake.db"
            )
        from pyiceberg.catalog.sql import SqlCatalog

        return SqlCatalog(name, uri=uri, **props)
    from pyiceberg.catalog.glue import GlueCatalog

    glue = {
        "glue.region": props["s3.region"],
        "glue.access-key-id": props["s3.access-key-id"],
        "glue.secret-access-key": props["s3.secret-access-key"],
    }
    if "s3.session-token" in props:
        glue["glue.session-token"] = props["s3.session-token"]
    if os.environ.get("AWS_ENDPOINT_URL_GLUE"):
        glue["glue.endpoint"] = os.environ["AWS_ENDPOINT_URL_GLUE"]
    return GlueCatalog(name, **props, **glue)


def file_io(catalog: Catalog) -> FileIO:
    """The catalog's FileIO (its ``s3.*`` properties): how the lake reads DMS's objects too."""
    return load_file_io(catalog.properties)
