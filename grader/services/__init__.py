"""The use cases between the API (routes and dashboard pages) and the store.

Routes and pages parse a request, look the objects up through `access` (which asks `policy` who may do what),
call one function here and present what it returns. The functions here take store rows and the acting user,
change or read the store through `grader.store`, and refuse with a `ServiceError` (errors.py) carrying a message
for a person; they never commit (the request's session does) and never import FastAPI.

    policy.py       who may do what in a course: THE access rule, a table
    access.py       store lookups through the policy: someone else's things are NotFound, like missing ones
    scores.py       THE counted score and pass of a submission, and a student's standing in an assignment
    submissions.py  upload (checks, daily quota, lateness, reuse, new run), regrade, override
    runs.py         run queries (status, queue), whole-assignment regrades (start, preview, apply)
    courses.py      courses, rosters, assignments
    grades.py       the gradebook export
    badges.py       what a student's badge shows, badge tokens
    audit.py        the audit log, as far as the caller may read it
"""
