"""The dms-ingestion Prefect flow: drive AWS DMS replication tasks from PostgreSQL to S3.

Importing the package sets two Prefect defaults (unless already set) before Prefect reads its
settings: a 180 s start-up timeout for the temporary local API (a fresh one needs ~30 s on a
small machine, the default allows 20) and no analytics. See ``flows.prefect_env``.
"""

from flows.prefect_env import apply_local_defaults

apply_local_defaults()

from flows.config import DmsIngestionConfig, load_config  # noqa: E402
from flows.dms_ingestion import dms_ingestion  # noqa: E402
from flows.report import IngestionReport, TableReport  # noqa: E402

__all__ = ["DmsIngestionConfig", "IngestionReport", "TableReport", "dms_ingestion", "load_config"]
