"""The staff dashboard and the students' badge page; `router` holds all of them."""

from fastapi import APIRouter

from api.web import auth, forms, pages, student

router = APIRouter()
for module in (auth, pages, forms, student):
    router.include_router(module.router)
