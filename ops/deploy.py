"""The deployment files, rendered from the pipeline registry (the book's four and yours: PIPELINES_PATH).

    make deploy         # outputs/deploy/{kserve.yaml, kubernetes.yaml, docker-run.sh, monitoring.config,
                        #   batching.config}; and <serving root>/models.config gets an entry for every pipeline
                        #   it lacks (labels and policies already in it are kept)

One model config for everything: `<serving root>/models.config` is what `make serve`, `make promote` and the
manifests read. Its base paths are relative to its folder (`base_path: "titanic"`): this server resolves them
against the config file's folder, and the manifests run TF Serving with that folder (/models) as working
directory, where TF Serving resolves them. serving/deploy/ holds the rendering for the book's four pipelines
(tests check it is current).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import List, Sequence

from core import layout
from core import tf_serving_config as tfs
from core.tf_serving_config import ModelConfig
from orchestration import config as config_lib
from pipelines import registry

HERE = layout.PROJECT_ROOT / "serving" / "deploy"
STATIC = ("kubernetes.yaml", "docker-run.sh", "monitoring.config", "batching.config")
TF_SERVING_IMAGE_VERSION = "2.16.1"  # the TensorFlow the models are trained with

_KSERVE_HEAD = """\
# KServe InferenceServices, one per pipeline (KServe's TensorFlow predictor is TF Serving); the storage is the
# PersistentVolumeClaim holding the Pusher's serving directory, one folder per model with numeric versions. Pods run
# under the "restricted" Pod Security Standard: non-root, no privilege escalation, no capabilities, read-only root.
# Rendered by `make deploy` (ops/deploy.py) from the pipeline registry.
"""
_KSERVE_ONE = """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: tfx-book-{k8s_name}
spec:
  predictor:
    securityContext:
      runAsNonRoot: true
      runAsUser: 65534
      runAsGroup: 65534
      fsGroup: 65534
      seccompProfile: {{type: RuntimeDefault}}
    tensorflow:
      runtimeVersion: "{version}"
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities: {{drop: [ALL]}}
      storageUri: pvc://tfx-book-serving-models/{name}
      resources:
        requests: {{cpu: "1", memory: 2Gi}}
        limits: {{memory: 4Gi}}
"""


def kserve_yaml(names: Sequence[str]) -> str:
    # KServe's names are DNS labels (lowercase, digits, '-'); the storage folder keeps the pipeline's own name
    return _KSERVE_HEAD + "---\n".join(
        _KSERVE_ONE.format(k8s_name=n.replace("_", "-").lower(), name=n, version=TF_SERVING_IMAGE_VERSION)
        for n in names
    )


def default_models(names: Sequence[str], folder: Path) -> List[ModelConfig]:
    return [ModelConfig(n, str((folder / n).resolve()), ("latest", 1), (), n) for n in names]


def model_config_text(names: Sequence[str]) -> str:
    """The initial model config: every pipeline, newest version, base paths relative to the file's folder."""
    lines = [
        "# TensorFlow Serving model config: every pipeline's pushed versions, newest served (TF Serving's",
        "# default policy). Base paths are relative to this file's folder (the serving root; mounted at /models",
        "# with /models as TF Serving's working directory). `make promote` adds labels and version policies.",
        "model_config_list {",
    ]
    lines += [f'  config {{ name: "{n}" base_path: "{n}" model_platform: "tensorflow" }}' for n in names]
    return "\n".join(lines + ["}", ""])


def ensure_model_config(serving_root: Path, names: Sequence[str]) -> List[str]:
    """Adds an entry for each pipeline the serving root's models.config lacks (or writes the file); returns the
    names added. Entries already there, labels and policies included, stay as they are."""
    path = Path(serving_root) / "models.config"
    if not path.is_file():
        Path(serving_root).mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(model_config_text(names), encoding="utf-8")
        tmp.replace(path)
        return list(names)
    models = tfs.read_model_config(path)
    have = {m.name for m in models}
    added = [n for n in names if n not in have]
    if added:
        tfs.write_model_config(path, models + default_models(added, Path(serving_root)))
    return added


def render(out: Path, names: Sequence[str]) -> List[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in STATIC:
        shutil.copy2(HERE / name, out / name)
        written.append(out / name)
    (out / "kserve.yaml").write_text(kserve_yaml(names), encoding="utf-8")
    (out / "models.config").write_text(model_config_text(names), encoding="utf-8")
    return written + [out / "kserve.yaml", out / "models.config"]


def main(argv=None) -> int:

    cfg = config_lib.from_env()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(cfg.output_dir) / "deploy")
    parser.add_argument("--serving-root", type=Path, default=Path(cfg.serving_root("x")).parent)
    args = parser.parse_args(argv)
    names = list(registry.PIPELINES)
    for path in render(args.out, names):
        print(f"wrote {path}")
    try:
        added = ensure_model_config(args.serving_root, names)
    except tfs.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"{args.serving_root / 'models.config'}: "
        + (f"added {', '.join(added)}" if added else "already lists every pipeline")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
