"""What a replica's ``/metrics`` says about one bundle: read by the post-flip check (hms.smoke).

Apart from hms.service.metrics (which needs FastAPI and the client library's collectors) so that a check reading
a replica's figures pays only for the text parser. The series names are defined here, once.
"""

from __future__ import annotations

from dataclasses import dataclass

ANSWERS = "hms_decision_answers_total"
EVALUATION_ERRORS = "hms_decision_evaluation_errors_total"
SERVER_ERRORS = "hms_decision_server_errors_total"
LOG_DROPPED = "hms_decision_log_dropped_total"


@dataclass(frozen=True)
class BundleFigures:
    """What a replica's ``/metrics`` says about one bundle, as the post-flip check reads it (hms.smoke)."""

    answers: float
    evaluation_errors: float
    server_errors: float  # every route, every bundle: a 5xx is the service's fault whatever it served
    log_dropped: float  # answers the decision log lost (queue full, sink failing)


def bundle_figures(text: str, sha256: str) -> BundleFigures:
    """Read ``text`` (the exposition format) for ``sha256``; absent series count 0."""
    from prometheus_client.parser import text_string_to_metric_families

    got = {"answers": 0.0, "evaluation_errors": 0.0, "server_errors": 0.0, "log_dropped": 0.0}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == ANSWERS and s.labels.get("bundle_sha256") == sha256:
                got["answers"] += s.value
            elif s.name == EVALUATION_ERRORS and s.labels.get("bundle_sha256") == sha256:
                got["evaluation_errors"] += s.value
            elif s.name == SERVER_ERRORS:
                got["server_errors"] += s.value
            elif s.name == LOG_DROPPED:
                got["log_dropped"] += s.value
    return BundleFigures(**got)
