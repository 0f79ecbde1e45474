"""The instructor dashboard, the students' badge page and the public badges; `router` holds all of them."""

from fastapi import APIRouter

from api.routes import badges
from api.web import pages

router = APIRouter()
router.include_router(pages.router)
router.include_router(badges.router)
