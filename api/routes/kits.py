"""Course kits (the course's own tinytorch package) and assignment self-tests, for a course's instructors."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, UploadFile, status

from api.deps import CurrentUser, SessionDep
from api.schemas import KitUploaded, SelfTestPublic
from grader.kits import MAX_UPLOAD_BYTES
from grader.services import access
from grader.services import kits as kit_service
from grader.services.policy import Action
from grader.settings import get_settings

router = APIRouter(prefix="/api/v1", tags=["kits"])


@router.post("/courses/{slug}/kits", status_code=status.HTTP_201_CREATED)
def upload_kit(slug: str, file: Annotated[UploadFile, File(description="wheel, .zip or .tar.gz with tinytorch/")],
               db: SessionDep, user: CurrentUser) -> KitUploaded:
    """Store the course's tinytorch package; put the returned `kit` in a spec as `[assignment] kit = "..."`."""
    access.course_for(db, slug, user, Action.EDIT_ASSIGNMENTS)
    stored = kit_service.upload_kit(file.file.read(MAX_UPLOAD_BYTES + 1))
    return KitUploaded(kit=stored.reference, files=stored.files)


@router.post("/assignments/{slug}/self-test")
def self_test(slug: str, file: Annotated[UploadFile, File(description="the reference solution (spatial.py)")],
              db: SessionDep, user: CurrentUser) -> SelfTestPublic:
    """Grade the reference solution under the assignment's spec and kit (synchronously) and keep the outcome."""
    assignment = access.assignment_for(db, slug, user, Action.EDIT_ASSIGNMENTS)
    kit_service.self_test(db, assignment, file.file.read(get_settings().submission_max_bytes + 1))
    return SelfTestPublic(**assignment.self_test)
