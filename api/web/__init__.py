"""The staff dashboard and the students' badge page; `router` holds all of them."""

from fastapi import APIRouter

from api.web import (auth, extension_forms, forms, leaderboard_pages, pages, similarity_pages, student,
                     student_pages)

router = APIRouter()
for module in (auth, pages, forms, extension_forms, similarity_pages, leaderboard_pages, student, student_pages):
    router.include_router(module.router)
