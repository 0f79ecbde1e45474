"""The instructor dashboard, the students' badge page and the public badges; `router` holds all of them."""

from fastapi import APIRouter

from api.routes import badges
from api.web import auth, forms, pages, student

router = APIRouter()
for module in (auth, pages, forms, student, badges):
    router.include_router(module.router)
