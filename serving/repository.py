"""The models under a serving root, as TF Serving sees them: `<root>/<model>/<numeric version>/saved_model.pb`.

The newest version of each model is loaded eagerly and kept current by `refresh()` (a poller calls it): a newly
pushed version is loaded first and then swapped in with one assignment, so a request that already holds the old
`LoadedModel` finishes on it. A version folder that is not (yet) a loadable SavedModel is skipped with a logged
reason, and the current version keeps serving; it is retried when its files change. Older versions load on
request and stay in a small cache.
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import os
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.protobuf import saved_model_pb2

log = logging.getLogger("serving")
OLD_VERSIONS_CACHED = 4


class NotFound(LookupError):
    """Unknown model or version (HTTP 404, gRPC NOT_FOUND)."""


@dataclasses.dataclass
class LoadedModel:
    name: str
    version: int
    path: Path
    module: object  # what tf.saved_model.load returned
    signature_defs: Dict[str, object]  # name -> SignatureDef proto
    loaded_at: float

    def signature(self, name: str):
        try:
            return self.module.signatures[name]
        except KeyError:
            raise KeyError(f"signature {name!r} not found; this model has {sorted(self.module.signatures)}") from None

    def metadata_json(self) -> dict:
        return {name: json_format.MessageToDict(sig, preserving_proto_field_name=True)
                for name, sig in self.signature_defs.items()}


def read_signature_defs(path: Path) -> Dict[str, object]:
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((path / "saved_model.pb").read_bytes())
    return {k: v for k, v in proto.meta_graphs[0].signature_def.items() if not k.startswith("__")}


def load(name: str, version: int, path: Path) -> LoadedModel:
    if not (path / "saved_model.pb").is_file():
        raise FileNotFoundError(f"{path}: no saved_model.pb (not a SavedModel, or still being written)")
    module = tf.saved_model.load(str(path))
    return LoadedModel(name, version, path, module, read_signature_defs(path), time.time())


def _fingerprint(path: Path) -> Tuple:
    """Changes when any file in the version folder changes, so a failed version is retried once rewritten."""
    entries = []
    for root, _, files in os.walk(path):
        for f in files:
            st = os.stat(os.path.join(root, f))
            entries.append((os.path.relpath(os.path.join(root, f), path), st.st_size, st.st_mtime_ns))
    return tuple(sorted(entries))


class Repository:
    def __init__(self, root: Path):
        self.root = Path(root)
        self._latest: Dict[str, LoadedModel] = {}
        self._old: "collections.OrderedDict[Tuple[str, int], LoadedModel]" = collections.OrderedDict()
        self._failed: Dict[Tuple[str, int], Tuple] = {}  # version -> fingerprint it failed with
        self._lock = threading.Lock()

    # ---- discovery
    def model_names(self) -> List[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def versions(self, name: str) -> List[int]:
        folder = self.root / name
        if not folder.is_dir():
            return []
        return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())

    # ---- loading
    def refresh(self) -> None:
        """Loads the newest loadable version of every model; call it periodically."""
        for name in self.model_names():
            current = self._latest.get(name)
            for version in reversed(self.versions(name)):
                if current is not None and version <= current.version:
                    break
                path = self.root / name / str(version)
                fingerprint = _fingerprint(path)
                if self._failed.get((name, version)) == fingerprint:
                    continue
                try:
                    loaded = load(name, version, path)
                except Exception as exc:  # a half-written or corrupt version must not stop the server
                    self._failed[(name, version)] = fingerprint
                    log.warning("not serving %s version %s: %s", name, version, exc)
                    continue
                self._failed.pop((name, version), None)
                with self._lock:
                    self._latest[name] = loaded  # the swap: requests holding the old object finish on it
                log.info("serving %s version %s (was %s)", name, version, current.version if current else "none")
                break
        with self._lock:
            for name in list(self._latest):
                if not (self.root / name / str(self._latest[name].version)).is_dir():
                    log.warning("%s version %s was removed; no longer serving it", name, self._latest[name].version)
                    del self._latest[name]

    def get(self, name: str, version: Optional[int] = None) -> LoadedModel:
        with self._lock:
            latest = self._latest.get(name)
        if version is None or (latest is not None and latest.version == version):
            if latest is None:
                raise NotFound(f"Servable not found for request: Latest({name})")
            return latest
        key = (name, version)
        with self._lock:
            if key in self._old:
                self._old.move_to_end(key)
                return self._old[key]
        if version not in self.versions(name):
            raise NotFound(f"Servable not found for request: Specific({name}, {version})")
        try:
            loaded = load(name, version, self.root / name / str(version))
        except Exception as exc:
            raise NotFound(f"Servable not found for request: Specific({name}, {version}): {exc}") from None
        with self._lock:
            self._old[key] = loaded
            while len(self._old) > OLD_VERSIONS_CACHED:
                self._old.popitem(last=False)
        return loaded

    def status(self, name: str, version: Optional[int] = None) -> List[dict]:
        """TF Serving's model_version_status entries."""
        versions = self.versions(name)
        if not versions or (version is not None and version not in versions):
            raise NotFound(f"Could not find any versions of model {name}" if version is None
                           else f"Could not find version {version} of model {name}")
        with self._lock:
            latest = self._latest.get(name)
        shown = [version] if version is not None else sorted(versions, reverse=True)
        entries = []
        for v in shown:
            failed = (name, v) in self._failed
            available = latest is not None and (v == latest.version or v < latest.version)
            entries.append({
                "version": str(v),
                "state": "AVAILABLE" if available and not failed else ("END" if failed else "LOADING"),
                "status": {"error_code": "UNKNOWN" if failed else "OK",
                           "error_message": "could not be loaded" if failed else ""},
            })
        return entries


class Poller(threading.Thread):
    def __init__(self, repository: Repository, every_s: float):
        super().__init__(daemon=True, name="serving-poller")
        self.repository, self.every_s = repository, every_s
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.every_s):
            try:
                self.repository.refresh()
            except Exception:  # keep polling whatever one pass met
                log.exception("refresh failed")

    def stop(self) -> None:
        self._halt.set()
