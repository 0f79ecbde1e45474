"""HMAC-SHA256 signatures of finished runs: what was graded, by which grader and image, and the score."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from grader.settings import get_settings
from grader.store.models import GradingRun


def signed_fields(run: GradingRun) -> dict[str, Any]:
    """The fields a signature covers, in a canonical form."""
    return {
        "run_id": run.id,
        "submission_sha256": run.submission.sha256,
        "spec_version": run.spec_version,
        "grader_version": run.grader_version,
        "image_digest": run.image_digest,
        "score": None if run.score is None else round(float(run.score), 6),
        "max_score": None if run.max_score is None else round(float(run.max_score), 6),
        "status": run.status,
    }


def _digest(fields: dict[str, Any], key: str) -> str:
    message = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def sign_run(run: GradingRun) -> str:
    return "hmac-sha256:" + _digest(signed_fields(run), get_settings().secret_key)


def verify_run(run: GradingRun) -> bool:
    if not run.signature:
        return False
    return hmac.compare_digest(run.signature, sign_run(run))
