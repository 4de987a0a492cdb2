"""The embedded dashboard: a page and a read-only JSON API over a `Timeline`."""

from jobcorr.extras import require

require("dashboard", "starlette", "uvicorn")
