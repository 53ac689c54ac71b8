"""The one place that opens a pipeline's ML Metadata store (read-only: readers never write lineage)."""

from __future__ import annotations

from pathlib import Path

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2


def open_store(sqlite_path, must_exist: bool = True) -> metadata_store.MetadataStore:
    """A read-only store on the SQLite file a local run writes. `must_exist=False` is for a poller that starts
    before the run has created the file."""
    if must_exist and not Path(sqlite_path).is_file():
        raise FileNotFoundError(f"no ML Metadata at {sqlite_path}: has the pipeline run yet?")
    cfg = metadata_store_pb2.ConnectionConfig()
    cfg.sqlite.filename_uri = str(sqlite_path)
    cfg.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(cfg)
