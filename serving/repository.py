"""The models a server serves, as TF Serving serves them: `<base path>/<numeric version>/saved_model.pb`.

Design notes: docs/design-notes.md, serving/repository.py."""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.protobuf import saved_model_pb2

from core import layout, tf_serving_config
from core.tf_serving_config import ModelConfig

log = logging.getLogger("serving")
MAX_NAME_BYTES = 255  # a file name; longer cannot be a model folder


class NotFound(LookupError):
    """Unknown model or version (HTTP 404, gRPC NOT_FOUND)."""


def shown(name: str, limit: int = 80) -> str:
    """A requested name as it may be echoed in a message: bounded, and printable."""
    text = name if len(name) <= limit else name[:limit] + "..."
    return text.encode("unicode_escape", "backslashreplace").decode("ascii") if not text.isprintable() else text


def parse_version(text: str) -> int:
    """A requested version as TF Serving accepts it (core/layout.py: ASCII digits of an int64)."""
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
            raise KeyError(
                f"signature {shown(str(name))!r} not found; this model has {sorted(self.module.signatures)}"
            ) from None

    def metadata_json(self) -> dict:
        return {
            name: json_format.MessageToDict(sig, preserving_proto_field_name=True)
            for name, sig in self.signature_defs.items()
        }


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
    def __init__(
        self, root: Path, model_config_file: Optional[Path] = None, allow_labels_for_unavailable: bool = False
    ):
        self.root = Path(root)
        self._real_root = os.path.realpath(self.root)
        self.model_config_file = Path(model_config_file) if model_config_file else None
        self.allow_labels_for_unavailable = allow_labels_for_unavailable
        self._configured: Optional[List[ModelConfig]] = None  # from the config file; None: discovery
        self._config_text = None  # what was last logged about the file, so a bad file is logged once
        self._served: Dict[str, Dict[int, LoadedModel]] = {}  # name -> version -> loaded, swapped whole
        self._labels: Dict[str, Dict[str, int]] = {}
        self._failed: Dict[Tuple[str, int], Tuple[Tuple, str]] = {}  # version -> (fingerprint, reason)
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._refused: set = set()
        self.on_load = lambda name, version, seconds, ok: None  # metrics hook
        # run on each version once loaded, before it serves (serving/warmup.py; server.py sets it): an exception
        # fails the version's load
        self.warmup: Optional[Callable[[LoadedModel], None]] = None
        self.config_poll_seconds = 0.0  # re-read the config file at most this often (0: never, TF Serving's default)
        self._config_read_at = time.monotonic()
        if self.model_config_file is not None:
            self._configured = tf_serving_config.read_model_config(self.model_config_file)  # ConfigError at start
            self._labels = {m.name: dict(m.labels) for m in self._configured if m.labels}

    # ---- paths, never shown
    def redact(self, text: str) -> str:
        """`text` with the serving root's absolute paths replaced, for messages and logs."""
        prefixes = {str(self.root), str(self.root.resolve()), self._real_root}
        for model in self._configured or []:
            prefixes.add(model.base_path)
        for prefix in sorted(prefixes, key=len, reverse=True):
            text = text.replace(
                prefix,
                "<serving root>"
                if prefix.startswith(self._real_root) or prefix in (str(self.root), str(self.root.resolve()))
                else "<base path>",
            )
        return text

    def _inside(self, path: Path, what: str) -> bool:
        real = os.path.realpath(path)
        if real == self._real_root or real.startswith(self._real_root + os.sep):
            return True
        if what not in self._refused:
            self._refused.add(what)
            log.warning("refusing %s: it is a link to a place outside the serving root", what)
        return False

    # ---- what is served
    def model_configs(self) -> List[ModelConfig]:
        """The configured models, or those discovered under the serving root (TF Serving's default policy)."""
        if self._configured is not None:
            return list(self._configured)
        try:
            entries = list(os.scandir(self.root))
        except OSError:
            return []
        return [
            tf_serving_config.default_model(e.name, str(self.root / e.name))
            for e in sorted(entries, key=lambda e: e.name)
            if not e.name.startswith(".")
            and len(e.name.encode("utf-8", "surrogateescape")) <= MAX_NAME_BYTES
            and e.is_dir()
            and self._inside(Path(e.path), f"model {shown(e.name)!r}")
        ]

    def model_names(self) -> List[str]:
        return [m.name for m in self.model_configs()]

    def _config_of(self, name: str) -> Optional[ModelConfig]:
        if not isinstance(name, str):
            return None
        return next((m for m in self.model_configs() if m.name == name), None)

    def _versions_in(self, model: ModelConfig) -> List[int]:
        folder = Path(model.base_path)
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return []
        found = []
        for e in entries:
            if layout.parse_version(e.name) is None or not e.is_dir():
                continue
            if self._configured is None and not self._inside(Path(e.path), f"{shown(model.name)} version {e.name}"):
                continue  # discovered models stay inside the root; configured base paths are the operator's
            found.append(int(e.name))
        return sorted(found)

    def versions(self, name: str) -> List[int]:
        model = self._config_of(name)
        return self._versions_in(model) if model else []

    # ---- loading
    def _load(self, model: ModelConfig, version: int) -> LoadedModel:
        path = Path(model.base_path) / str(version)
        fingerprint = _fingerprint(path)
        failed = self._failed.get((model.name, version))
        if failed and failed[0] == fingerprint:
            raise RuntimeError(failed[1])
        started = time.monotonic()
        try:
            loaded = load(model.name, version, path)
            if self.warmup is not None:
                self.warmup(loaded)
        except Exception as exc:  # a half-written or corrupt version must not stop the server
            reason = self.redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
            self._failed[(model.name, version)] = (fingerprint, reason)
            log.warning("not serving %s version %s: %s", shown(model.name), version, reason)
            self.on_load(model.name, version, time.monotonic() - started, False)
            raise RuntimeError(reason) from None
        self._failed.pop((model.name, version), None)
        self.on_load(model.name, version, time.monotonic() - started, True)
        return loaded

    def _read_config(self) -> Optional[List[ModelConfig]]:
        """The config file as it is now, or None (logged once per content) when it cannot be read or parsed:
        TF Serving's poll reads and re-applies the file every time (server.cc PollFilesystemAndReloadConfig)."""
        try:
            text = self.model_config_file.read_text(encoding="utf-8")
        except OSError as exc:
            if self._config_text != ("unreadable", exc.strerror):
                log.error("Failed to read ModelServerConfig file: %s; keeping the current config", exc.strerror)
            self._config_text = ("unreadable", exc.strerror)
            return None
        try:
            configured = tf_serving_config.read_model_config(self.model_config_file)
        except tf_serving_config.ConfigError as exc:
            if self._config_text != ("bad", text):
                log.error("Failed to read ModelServerConfig file: %s; keeping the current config", exc)
            self._config_text = ("bad", text)
            return None
        return configured

    def start(self) -> None:
        """The first load, as TF Serving's first config: the labels are checked before any version is loaded,
        so a label is refused at start-up unless --allow_version_labels_for_unavailable_models (server_core.cc
        ReloadConfig: UpdateModelVersionLabelMap runs before AddModelsViaModelConfigList)."""
        if self._configured is not None:
            problem = self._label_problem(self._configured, {}, {})
            if problem:
                raise tf_serving_config.ConfigError(
                    f"{problem} (TF Serving checks labels before it loads anything: start with "
                    f"--allow_version_labels_for_unavailable_models, or add the labels once the versions serve)"
                )
        self.refresh()

    def refresh(self) -> None:
        """Re-reads the config file (when there is one) and applies it, labels first, as TF Serving's ReloadConfig
        does: a config whose labels point at versions not available (and not allowed) is refused as a whole,
        its models included, and tried again at the next poll. Then loads what each policy aspires and lets go
        what it no longer does; call it periodically."""
        with self._refresh_lock:
            now = time.monotonic()
            if (
                self.model_config_file is not None
                and self.config_poll_seconds > 0
                and now - self._config_read_at >= self.config_poll_seconds * 0.999
            ):
                self._config_read_at = now
                configured = self._read_config()
                if configured is not None:
                    with self._lock:
                        available = {name: set(versions) for name, versions in self._served.items()}
                        old = {name: dict(labels) for name, labels in self._labels.items()}
                    problem = self._label_problem(configured, available, old)
                    if problem:
                        if self._config_text != ("refused", problem):
                            log.error(
                                "PollFilesystemAndReloadConfig failed to ReloadConfig: %s; the previous "
                                "config stays in force",
                                problem,
                            )
                        self._config_text = ("refused", problem)
                    else:
                        before = sorted(m.name for m in self._configured or [])
                        if configured != self._configured:
                            log.info(
                                "model config applied: models %s (were %s)", sorted(m.name for m in configured), before
                            )
                        self._configured = configured
                        self._config_text = None
                        with self._lock:
                            self._labels = {m.name: dict(m.labels) for m in configured if m.labels}
            models = self.model_configs()
            for model in models:
                self._refresh_model(model)
            with self._lock:
                names = {m.name for m in models}
                for name in [n for n in self._served if n not in names]:
                    log.warning("model %s is no longer configured or present; no longer serving it", shown(name))
                    del self._served[name]
                    self._labels.pop(name, None)
                for key in [k for k in self._failed if k[0] not in names]:
                    del self._failed[key]

    def _refresh_model(self, model: ModelConfig) -> None:
        on_disk = self._versions_in(model)
        with self._lock:
            current = dict(self._served.get(model.name, {}))
        if model.policy[0] == "latest":
            # the newest N versions that load: a broken or half-written newest folder is skipped (logged, retried
            # when its files change) and the next one down serves
            candidates, limit = list(reversed(on_disk)), model.policy[1]
        else:
            candidates, limit = list(reversed(model.aspired(on_disk))), len(on_disk)
        served: Dict[int, LoadedModel] = {}
        for version in candidates:
            if len(served) == limit:
                break
            if version in current:
                served[version] = current[version]
                continue
            try:
                served[version] = self._load(model, version)
            except RuntimeError:
                continue
            log.info("serving %s version %s", shown(model.name), version)
        for version in sorted(set(current) - set(served)):
            log.info(
                "%s version %s is no longer served (unloaded once its requests finish)", shown(model.name), version
            )
        with self._lock:
            self._served[model.name] = served  # the swap: requests holding an old LoadedModel finish on it
        for key in [k for k in self._failed if k[0] == model.name and k[1] not in on_disk]:
            del self._failed[key]

    def _label_problem(
        self, models: List[ModelConfig], available: Dict[str, set], old: Dict[str, Dict[str, int]]
    ) -> Optional[str]:
        """TF Serving's rule for a config's labels (server_core.cc UpdateModelVersionLabelMap): each must point at
        an available version, unless --allow_version_labels_for_unavailable_models and the label is new or keeps
        its version. Returns TF Serving's message for the first label that breaks it."""
        for model in models:
            for label, version in model.labels:
                existing = old.get(model.name, {}).get(label)
                allowed = self.allow_labels_for_unavailable and (existing is None or existing == version)
                if not allowed and version not in available.get(model.name, set()):
                    return (
                        f"Request to assign label to version {version} of model {shown(model.name)}, which is "
                        f"not currently available for inference"
                    )
        return None

    # ---- requests
    def labels(self, name: str) -> Dict[str, int]:
        with self._lock:
            return dict(self._labels.get(name, {}))

    def version_for_label(self, name: str, label: str) -> int:
        with self._lock:
            version = self._labels.get(name, {}).get(label) if isinstance(name, str) else None
        if version is None:  # an unknown model too: server_core.cc:874-891 looks the pair up in one map
            raise NotFound(f"Unrecognized servable version label: {shown(str(label))}")
        return version

    def served_model(self, name: str, missing: str) -> ModelConfig:
        model = self._config_of(name)
        if model is None:
            raise NotFound(missing)
        return model

    def loaded(self, name: str, version: Optional[int] = None, label: Optional[str] = None) -> Optional[LoadedModel]:
        """The model a request would get, when it is in memory (no file system); None otherwise."""
        with self._lock:
            versions = self._served.get(name) if isinstance(name, str) else None
            if not versions:
                return None
            if label is not None:
                version = self._labels.get(name, {}).get(label)
                if version is None:
                    return None
            return versions[max(versions)] if version is None else versions.get(version)

    def get(self, name: str, version: Optional[int] = None, label: Optional[str] = None) -> LoadedModel:
        """The model to answer with: the newest served version, the one named, or the one a label points at."""
        if label is not None:
            with self._lock:  # the label and its version read together: a relabel between the two cannot strand it
                version = self._labels.get(name, {}).get(label) if isinstance(name, str) else None
                found = self._served.get(name, {}).get(version) if version is not None else None
            if version is None:  # an unknown model too: server_core.cc:874-891 looks the pair up in one map
                raise NotFound(f"Unrecognized servable version label: {shown(str(label))}")
        else:
            found = self.loaded(name, version)
        if found is None:
            wanted = f"Latest({shown(str(name))})" if version is None else f"Specific({shown(str(name))}, {version})"
            raise NotFound(f"Servable not found for request: {wanted}")
        return found

    def status(self, name: str, version: Optional[int] = None, label: Optional[str] = None) -> List[dict]:
        """TF Serving's model_version_status entries for the versions the model's policy names: AVAILABLE when
        loaded and answering, LOADING while aspired and not yet loaded, END with the reason when it could not be."""
        if label is not None:
            version = self.version_for_label(name, label)
        missing = (
            f"Could not find any versions of model {shown(name)}"
            if version is None
            else f"Could not find version {version} of model {shown(name)}"
        )
        model = self.served_model(name, missing)
        on_disk = self._versions_in(model)
        with self._lock:
            served = set(self._served.get(name, {}))
        aspired = (
            sorted(set(model.aspired(on_disk)) | served)
            if model.policy[0] != "latest"
            else sorted(served | set(on_disk[-model.policy[1] :]))
        )
        if version is not None:
            aspired = [version] if version in aspired else []
        if not aspired:
            raise NotFound(missing)
        entries = []
        for v in sorted(aspired, reverse=True):
            failed = self._failed.get((name, v))
            if v in served:
                state, code, message = "AVAILABLE", "OK", ""
            elif failed:
                state, code, message = "END", "UNKNOWN", f"could not be loaded: {failed[1]}"
            else:
                state, code, message = "LOADING", "OK", ""
            entries.append(
                {"version": str(v), "state": state, "status": {"error_code": code, "error_message": message}}
            )
        return entries

    def is_served(self, name) -> bool:
        return isinstance(name, str) and bool(self._served.get(name))

    def served_versions(self) -> Dict[str, List[int]]:
        with self._lock:
            return {name: sorted(versions) for name, versions in self._served.items()}


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
