"""`grader sandbox build-image [--offline]`, `ensure-image`, `cleanup`, `status`: the sandbox image and leftovers."""

from __future__ import annotations

import argparse
import sys
import time

from grader.settings import get_settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("sandbox", help="Build the sandbox image, remove leftover job containers.")
    actions = parser.add_subparsers(dest="sandbox_action", required=True)
    build = actions.add_parser("build-image", help="Build the sandbox image for the current kit and harnesses.")
    build.add_argument("--offline", action="store_true",
                       help="no registry: debootstrap a Debian root filesystem and docker-import it")
    build.add_argument("--rootfs-only", action="store_true",
                       help="only build the offline root filesystem (enough for the bwrap backend; no Docker needed)")
    build.add_argument("--force", action="store_true", help="rebuild the job image even if its tag exists")
    build.set_defaults(handler=run_build)
    ensure = actions.add_parser("ensure-image", help="Build the sandbox image only if it is missing, then check it.")
    ensure.add_argument("--backend", choices=("both", "auto"), default="both",
                        help="both (default): the Docker image and the bubblewrap root filesystem; auto: the Docker "
                             "image when an engine answers, else only the root filesystem bubblewrap runs over")
    ensure.set_defaults(handler=run_ensure)
    cleanup = actions.add_parser("cleanup", help="Remove job containers and job directories left behind by crashes.")
    cleanup.add_argument("--all", action="store_true", help="also those of workers still running on this host")
    cleanup.add_argument("--images", action="store_true",
                         help="also remove sandbox images of earlier kits/harnesses older than a day")
    cleanup.set_defaults(handler=run_cleanup)
    status = actions.add_parser("status", help="Say which backend would run student code here, and why.")
    status.set_defaults(handler=run_status)


def _fail(message: str) -> int:
    print(f"grader sandbox: {message}", file=sys.stderr)
    return 2


def run_build(args: argparse.Namespace) -> int:
    from sandbox.image import build
    from sandbox.runner import InfrastructureError
    from sandbox.select import sandbox_cache_dir

    settings = get_settings()
    started = time.perf_counter()
    try:
        if args.rootfs_only:
            rootfs = build.build_rootfs(sandbox_cache_dir(settings))
            print(f"root filesystem ready at {rootfs} in {time.perf_counter() - started:.1f} s")
            return 0
        from sandbox.docker_backend import connect

        ref = build.ensure_image(connect(), offline=args.offline, cache_dir=sandbox_cache_dir(settings),
                                 force=args.force)
    except InfrastructureError as error:
        return _fail(str(error))
    print(f"sandbox image {ref.tag} ({ref.image_id}) ready in {time.perf_counter() - started:.1f} s")
    return 0


def run_ensure(args: argparse.Namespace) -> int:
    from sandbox.docker_backend import DockerRunner, connect
    from sandbox.image import build
    from sandbox.runner import InfrastructureError, SandboxJob
    from sandbox.select import job_root, sandbox_cache_dir

    settings = get_settings()
    started = time.perf_counter()
    if args.backend == "auto":
        try:
            connect()
        except InfrastructureError as error:
            return _ensure_bwrap_only(settings, started, reason=str(error))
    try:
        if args.backend == "both":
            # The bwrap backend (the fallback without Docker) runs over the same root filesystem the image is built
            # from; keep it present too, so either backend can run student code here.
            build.build_rootfs(sandbox_cache_dir(settings))
        client = connect()
        image = settings.sandbox_image
        if image.endswith(":auto"):
            image = build.ensure_image(client, cache_dir=sandbox_cache_dir(settings)).image_id
        runner = DockerRunner(image, job_root=job_root(settings), client=client)
        removed = runner.cleanup_orphans()
        if removed:
            print(f"removed {removed} job container(s) left behind by a crash")
        outcome = runner.run(SandboxJob("smoke", b"x = 1\n"))
    except InfrastructureError as error:
        return _fail(f"{error}\n(start the engine with scripts/ensure_services.sh)")
    if outcome.status != "ok" or b'"imported": true' not in outcome.result:
        return _fail(f"the sandbox image does not run jobs: {outcome.status} {outcome.log_tail[-500:]}")
    print(f"sandbox image {runner.image_id[:19]} ok: empty job in {outcome.duration_s:.2f} s "
          f"(ensure-image took {time.perf_counter() - started:.1f} s)")
    return 0


def _ensure_bwrap_only(settings, started: float, *, reason: str) -> int:
    """No Docker engine: the root filesystem bubblewrap runs over, checked with an empty job."""
    from sandbox.bwrap_backend import BwrapRunner
    from sandbox.image import build
    from sandbox.runner import InfrastructureError, SandboxJob
    from sandbox.select import job_root, sandbox_cache_dir

    print(f"no Docker engine ({reason}); student code will run under bubblewrap", file=sys.stderr)
    try:
        rootfs = build.build_rootfs(sandbox_cache_dir(settings))
        runner = BwrapRunner(rootfs=rootfs, job_root=job_root(settings))
        outcome = runner.run(SandboxJob("smoke", b"x = 1\n"))
    except InfrastructureError as error:
        return _fail(str(error))
    if outcome.status != "ok" or b'"imported": true' not in outcome.result:
        return _fail(f"the bubblewrap sandbox does not run jobs: {outcome.status} {outcome.log_tail[-500:]}")
    print(f"bubblewrap sandbox over {rootfs} ok: empty job in {outcome.duration_s:.2f} s "
          f"(ensure-image took {time.perf_counter() - started:.1f} s)")
    return 0


def run_cleanup(args: argparse.Namespace) -> int:
    from sandbox.docker_backend import cleanup_orphans, connect
    from sandbox.runner import InfrastructureError
    from sandbox.select import job_root

    try:
        client = connect()
        removed = cleanup_orphans(client, job_root(get_settings()), everything=args.all)
        print(f"removed {removed} job container(s)")
        if args.images:
            from sandbox.image.build import remove_stale_images

            for tag in remove_stale_images(client):
                print(f"removed image {tag}")
    except InfrastructureError as error:
        return _fail(str(error))
    return 0


def run_status(args: argparse.Namespace) -> int:
    from sandbox.runner import InfrastructureError
    from sandbox.select import select_runner

    try:
        runner = select_runner(get_settings())
    except InfrastructureError as error:
        return _fail(str(error))
    detail = getattr(runner, "image_id", "") or getattr(runner, "rootfs", "")
    print(f"student code runs with the {runner.name} backend {detail}")
    return 0
