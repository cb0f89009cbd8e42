"""The dms-ingestion Prefect flow: drive AWS DMS replication tasks from PostgreSQL to S3."""

from flows.config import DmsIngestionConfig, load_config
from flows.dms_ingestion import dms_ingestion
from flows.report import IngestionReport, TableReport

__all__ = ["DmsIngestionConfig", "IngestionReport", "TableReport", "dms_ingestion", "load_config"]
