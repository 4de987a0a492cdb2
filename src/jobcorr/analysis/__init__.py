"""Analysis over a `Timeline`: spikes, and which job explains them. Pure functions; no
source, store or web code is imported here.

    explanation = explain(timeline, at=time.time() - 900, metric="memory")
    print(explanation.conclusion)
"""

from jobcorr.extras import require

require("explain", "numpy")


from jobcorr.analysis.evidence import VolumeFit
from jobcorr.analysis.explain import (
    Candidate,
    Explanation,
    SurveyedSpike,
    explain,
    survey,
)
from jobcorr.analysis.spikes import Spike, SpikeSettings, default_settings, find_spikes

__all__ = [
    "Candidate",
    "Explanation",
    "Spike",
    "SpikeSettings",
    "SurveyedSpike",
    "VolumeFit",
    "default_settings",
    "explain",
    "find_spikes",
    "survey",
]
