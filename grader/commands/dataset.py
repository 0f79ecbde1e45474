"""`grader dataset prepare`: read a CIFAR-10 copy once and write the memory-mappable cache training jobs mount."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from grader.settings import get_settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("dataset", help="Prepare data sets used by the CIFAR-10 stage.")
    actions = parser.add_subparsers(dest="dataset_action", required=True)
    prepare = actions.add_parser(
        "prepare", help="Prepare the CIFAR-10 cache from cifar-10-python.tar.gz, cifar-10-batches-py/ or an "
                        "image-folder archive (train/<class>/*, test/<class>/*).")
    prepare.add_argument("--source", type=Path, default=None, help="CIFAR-10 copy (default: settings.cifar10_source)")
    prepare.add_argument("--dest", type=Path, default=None, help="cache directory (default: settings.cifar10_cache_dir)")
    prepare.add_argument("--force", action="store_true", help="rewrite the cache even if it matches the source")
    prepare.add_argument("--workers", type=int, default=2, help="image decoding threads")
    prepare.set_defaults(handler=run_prepare)


def run_prepare(args: argparse.Namespace) -> int:
    from grader.datasets.cifar10 import DatasetError, prepare

    settings = get_settings()
    source = args.source or settings.cifar10_source
    dest = args.dest or settings.cifar10_cache_dir
    started = time.perf_counter()
    try:
        prepared, written = prepare(source, dest, force=args.force, workers=args.workers)
    except (DatasetError, OSError) as error:
        print(f"grader dataset prepare: {error}", file=sys.stderr)
        return 2
    counts = prepared.manifest["counts"]
    verb = "prepared" if written else "reused"
    print(f"{verb} CIFAR-10 cache at {prepared.root} ({counts['train']} train, {counts['test']} test images, "
          f"{prepared.manifest['source_format']}) in {time.perf_counter() - started:.1f} s")
    return 0
