"""Fleet artifacts generated from one `Description`: Grafana dashboards, Prometheus rules
with their unit tests, Kubernetes manifests and a plain scrape config.

    from jobcorr.artifacts import write_all
    write_all(description, Path("deploy"))       # or: jobcorr export all --out deploy/
"""

from jobcorr.extras import require

require("artifacts", "grafana_foundation_sdk", "yaml")


from jobcorr.artifacts.description import (
    DASHBOARD_PORT,
    Description,
    MemorySource,
    Thresholds,
    VolumeQuery,
    load_description,
)
from jobcorr.artifacts.export import ARTIFACTS, render_all, write_all

__all__ = [
    "ARTIFACTS",
    "DASHBOARD_PORT",
    "Description",
    "MemorySource",
    "Thresholds",
    "VolumeQuery",
    "load_description",
    "render_all",
    "write_all",
]
