"""Promotion and rollback as commands, each recorded in the pipeline's ML Metadata (core/promotion.py edits
the serving root's model config, metadata/promotions.py keeps the record).

    python -m ops.promote promote titanic 1796195387 canary     (or: make promote PIPELINE= VERSION= LABEL=)
    python -m ops.promote rollback titanic                      (or: make rollback PIPELINE=)
    python -m ops.promote show titanic                          # the labels and their history
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Dict, Optional

from core import layout
from core import tf_serving_config as tfs
from core.promotion import DEFAULT_SERVER, PromotionError, assign
from metadata.promotions import describe, history, record, rollback_target
from orchestration import config as config_lib
from pipelines import registry


def promote(
    pipeline: str,
    version: int,
    label: str,
    cfg=None,
    server: Optional[str] = None,
    action: str = "promote",
    say: Callable[[str], None] = print,
) -> Dict:
    cfg = cfg or config_lib.from_env()
    serving_root = Path(cfg.serving_root(pipeline)).parent
    done = assign(serving_root, pipeline, version, label, server=server, say=say)
    record(cfg.metadata_path(pipeline), pipeline, pipeline, label, version, done["previous"], action)
    return done


def rollback(pipeline: str, cfg=None, server: Optional[str] = None, say: Callable[[str], None] = print) -> Dict:
    cfg = cfg or config_lib.from_env()
    records = history(cfg.metadata_path(pipeline), pipeline, pipeline)
    target = rollback_target(records)
    if target is None:
        raise PromotionError(
            f"{pipeline}: no earlier stable version is recorded in ML Metadata "
            f"({cfg.metadata_path(pipeline)}); point stable at a version with "
            f"`make promote PIPELINE={pipeline} VERSION=<version> LABEL=stable`"
        )
    return promote(pipeline, target, "stable", cfg, server, action="rollback", say=say)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("promote", help="point a label at a version")
    p.add_argument("pipeline")
    p.add_argument("version")
    p.add_argument("label")
    r = sub.add_parser("rollback", help="point stable back at the version before")
    r.add_argument("pipeline")
    s = sub.add_parser("show", help="the labels and their history")
    s.add_argument("pipeline")
    for q in (p, r):
        q.add_argument(
            "--server",
            default=None,
            help=f"the serving REST address to wait for (SERVING_URL, default {DEFAULT_SERVER}; 'none': do not wait)",
        )
    args = parser.parse_args(argv)
    if args.pipeline not in registry.PIPELINES:
        parser.error(f"unknown pipeline {args.pipeline!r}; known: {', '.join(registry.PIPELINES)}")
    try:
        if args.command == "promote":
            version = layout.parse_version(args.version)
            if version is None:
                parser.error(f"VERSION {args.version!r} is not a version number")
            promote(args.pipeline, version, args.label, server=args.server)
        elif args.command == "rollback":
            rollback(args.pipeline, server=args.server)
        print(describe(args.pipeline))
    except (PromotionError, tfs.ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
