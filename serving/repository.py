"""The models under a serving root, as TF Serving sees them: `<root>/<model>/<numeric version>/saved_model.pb`.

Resolution (the one place REST and gRPC turn a request into a folder): a request names one of the model folders
discovered under the root, or gets NotFound. A requested name is never joined onto a path: `../x`, `/proc`, a
name of 10 000 bytes simply is not one of the discovered names. Every model and version folder must also *really*
lie inside the real serving root: a symlink that leaves it is refused, and logged once. TF Serving does the same in
its own way: it serves only the models it was configured with.

Loading: the newest version of each model is loaded eagerly and kept current by `refresh()` (a poller calls it):
a new version is loaded first and then swapped in with one assignment, so a request that already holds the old
`LoadedModel` finishes on it. When the served version disappears (a rollback deletes it), the newest remaining
version is loaded *before* the deleted one is let go, as TF Serving loads before it unloads, so no request fails
in between. A version folder that is not (yet) a loadable SavedModel is skipped with a logged reason and retried
when its files change. Older versions load on request, one load per version at a time, and stay in a small
cache, which forgets a version whose folder was deleted.

Messages and logs name models and versions, never the server's absolute paths.
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

from components import layout

log = logging.getLogger("serving")
OLD_VERSIONS_CACHED = 4
MAX_NAME_BYTES = 255  # a file name; longer cannot be a model folder


class NotFound(LookupError):
    """Unknown model or version (HTTP 404, gRPC NOT_FOUND)."""


def shown(name: str, limit: int = 80) -> str:
    """A requested name as it may be echoed in a message: bounded, and printable."""
    text = name if len(name) <= limit else name[:limit] + "..."
    return text.encode("unicode_escape", "backslashreplace").decode("ascii") if not text.isprintable() else text


def parse_version(text: str) -> int:
    """A requested version as TF Serving accepts it (components/layout.py: ASCII digits of an int64)."""
    version = layout.parse_version(text or "")
    if version is None or text.endswith("/"):
        raise ValueError(f"version {shown(text)!r} is not a number")
    return version


@dataclasses.dataclass
class LoadedModel:
    name: str
    version: int
    path: Path
    module: object  # what tf.saved_model.load returned
    signature_defs: Dict[str, object]  # name -> SignatureDef proto
    loaded_at: float
    # signature name -> what inference.py derives from it once (its input specs); filled on first use
    derived: Dict[str, object] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def signature(self, name: str):
        try:
            return self.module.signatures[name]
        except (KeyError, TypeError):
            raise KeyError(f"signature {shown(str(name))!r} not found; this model has "
                           f"{sorted(self.module.signatures)}") from None

    def metadata_json(self) -> dict:
        return {name: json_format.MessageToDict(sig, preserving_proto_field_name=True)
                for name, sig in self.signature_defs.items()}


def read_signature_defs(path: Path) -> Dict[str, object]:
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((path / "saved_model.pb").read_bytes())
    return {k: v for k, v in proto.meta_graphs[0].signature_def.items() if not k.startswith("__")}


def load(name: str, version: int, path: Path) -> LoadedModel:
    if not (path / "saved_model.pb").is_file():
        raise FileNotFoundError("no saved_model.pb (not a SavedModel, or still being written)")
    module = tf.saved_model.load(str(path))
    return LoadedModel(name, version, path, module, read_signature_defs(path), time.time())


def _fingerprint(path: Path) -> Tuple:
    """Changes when any file in the version folder changes, so a failed version is retried once rewritten."""
    entries = []
    for root, _, files in os.walk(path):
        for f in files:
            try:
                st = os.stat(os.path.join(root, f))
            except OSError:
                continue
            entries.append((os.path.relpath(os.path.join(root, f), path), st.st_size, st.st_mtime_ns))
    return tuple(sorted(entries))


class Repository:
    def __init__(self, root: Path):
        self.root = Path(root)
        self._real_root = os.path.realpath(self.root)
        self._latest: Dict[str, LoadedModel] = {}
        self._old: "collections.OrderedDict[Tuple[str, int], LoadedModel]" = collections.OrderedDict()
        self._failed: Dict[Tuple[str, int], Tuple[Tuple, str]] = {}  # version -> (fingerprint, reason)
        self._lock = threading.Lock()
        self._loading: Dict[Tuple[str, int], threading.Lock] = collections.defaultdict(threading.Lock)
        self._refused: set = set()

    # ---- paths, never shown
    def redact(self, text: str) -> str:
        """`text` with the serving root's absolute paths replaced, for messages and logs."""
        for prefix in sorted({str(self.root), str(self.root.resolve()), self._real_root}, key=len, reverse=True):
            text = text.replace(prefix, "<serving root>")
        return text

    def _inside(self, path: Path, what: str) -> bool:
        real = os.path.realpath(path)
        if real == self._real_root or real.startswith(self._real_root + os.sep):
            return True
        if what not in self._refused:
            self._refused.add(what)
            log.warning("refusing %s: it is a link to a place outside the serving root", what)
        return False

    # ---- discovery: the resolver
    def model_names(self) -> List[str]:
        try:
            entries = list(os.scandir(self.root))
        except OSError:
            return []
        return sorted(e.name for e in entries
                      if not e.name.startswith(".") and len(e.name.encode("utf-8", "surrogateescape")) <= MAX_NAME_BYTES
                      and e.is_dir() and self._inside(Path(e.path), f"model {shown(e.name)!r}"))

    def model_dir(self, name: str, missing: str) -> Path:
        """The folder of a discovered model; NotFound(`missing`) for any other name."""
        if not isinstance(name, str) or name not in self.model_names():
            raise NotFound(missing)
        return self.root / name

    def _versions_in(self, folder: Path, name: str) -> List[int]:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return []
        found = []
        for e in entries:
            if layout.parse_version(e.name) is not None and e.is_dir() \
                    and self._inside(Path(e.path), f"{shown(name)} version {e.name}"):
                found.append(int(e.name))
        return sorted(found)

    def versions(self, name: str) -> List[int]:
        try:
            return self._versions_in(self.model_dir(name, ""), name)
        except NotFound:
            return []

    # ---- loading
    def _load(self, name: str, version: int) -> LoadedModel:
        path = self.root / name / str(version)
        fingerprint = _fingerprint(path)
        failed = self._failed.get((name, version))
        if failed and failed[0] == fingerprint:
            raise RuntimeError(failed[1])
        try:
            loaded = load(name, version, path)
        except Exception as exc:  # a half-written or corrupt version must not stop the server
            reason = self.redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
            self._failed[(name, version)] = (fingerprint, reason)
            log.warning("not serving %s version %s: %s", shown(name), version, reason)
            raise RuntimeError(reason) from None
        self._failed.pop((name, version), None)
        return loaded

    def refresh(self) -> None:
        """Loads the newest loadable version of every model; call it periodically."""
        names = self.model_names()
        for name in names:
            versions = self._versions_in(self.root / name, name)
            current = self._latest.get(name)
            still_there = current is not None and current.version in versions
            candidates = [v for v in reversed(versions) if not still_there or v > current.version]
            for version in candidates:
                with self._lock:
                    cached = self._old.get((name, version))
                try:
                    loaded = cached or self._load(name, version)
                except RuntimeError:
                    continue
                with self._lock:
                    self._latest[name] = loaded  # the swap: requests holding the old object finish on it
                    self._old.pop((name, version), None)
                log.info("serving %s version %s (was %s)", shown(name), version,
                         current.version if current else "none")
                break
            else:
                if current is not None and not still_there:
                    with self._lock:
                        self._latest.pop(name, None)
                    log.warning("%s version %s was removed and no other version loads; not serving %s",
                                shown(name), current.version, shown(name))
        with self._lock:
            for name in [n for n in self._latest if n not in names]:
                log.warning("model %s was removed; no longer serving it", shown(name))
                del self._latest[name]
            for key in [k for k in self._old if not (self.root / k[0] / str(k[1])).is_dir()]:
                del self._old[key]  # a deleted version is not served from the cache either
            for key in [k for k in self._failed if not (self.root / k[0] / str(k[1])).is_dir()]:
                del self._failed[key]

    def loaded(self, name: str, version: Optional[int] = None) -> Optional[LoadedModel]:
        """The model a request would get, when it is already in memory (no loading, no file system); None when
        `get` would have to look further."""
        with self._lock:
            latest = self._latest.get(name)
            if latest is not None and (version is None or latest.version == version):
                return latest
            return self._old.get((name, version)) if version is not None else None

    def get(self, name: str, version: Optional[int] = None) -> LoadedModel:
        """The model to answer with. May load an older version (seconds): call it off an event loop."""
        wanted = f"Latest({shown(name)})" if version is None else f"Specific({shown(name)}, {version})"
        missing = f"Servable not found for request: {wanted}"
        self.model_dir(name, missing)
        with self._lock:
            latest = self._latest.get(name)
        if version is None or (latest is not None and latest.version == version):
            if latest is None:
                raise NotFound(missing)
            return latest
        if version not in self.versions(name):
            raise NotFound(missing)
        key = (name, version)
        with self._loading[key]:  # one load per version at a time; the others wait for it
            with self._lock:
                if key in self._old:
                    self._old.move_to_end(key)
                    return self._old[key]
            try:
                loaded = self._load(name, version)
            except RuntimeError as exc:
                raise NotFound(f"{missing}: {exc}") from None
            with self._lock:
                self._old[key] = loaded
                while len(self._old) > OLD_VERSIONS_CACHED:
                    self._old.popitem(last=False)
        return loaded

    def status(self, name: str, version: Optional[int] = None) -> List[dict]:
        """TF Serving's model_version_status entries. AVAILABLE means loaded and answering: the served version
        and older ones in the cache. Asked for one version, the status loads it to tell the truth; listing all,
        an older version not loaded is END (TF Serving's word for unloaded) and loads when a request names it."""
        missing = (f"Could not find any versions of model {shown(name)}" if version is None
                   else f"Could not find version {version} of model {shown(name)}")
        self.model_dir(name, missing)
        versions = self.versions(name)
        if not versions or (version is not None and version not in versions):
            raise NotFound(missing)
        if version is not None:
            try:
                self.get(name, version)
            except NotFound:
                pass  # reported below as END with its reason
        with self._lock:
            latest = self._latest.get(name)
            loaded = {v for (n, v) in self._old if n == name} | ({latest.version} if latest else set())
        entries = []
        for v in ([version] if version is not None else sorted(versions, reverse=True)):
            failed = self._failed.get((name, v))
            if v in loaded:
                state, code, message = "AVAILABLE", "OK", ""
            elif failed:
                state, code, message = "END", "UNKNOWN", f"could not be loaded: {failed[1]}"
            elif latest is None or v > latest.version:
                state, code, message = "LOADING", "OK", ""
            else:
                state, code, message = "END", "OK", ""
            entries.append({"version": str(v), "state": state, "status": {"error_code": code, "error_message": message}})
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
            except Exception as exc:  # keep polling whatever one pass met
                log.error("refresh failed: %s", self.repository.redact(repr(exc)))

    def stop(self) -> None:
        self._halt.set()
