"""Compliance scan: the privacy, ethics and legal Rego rule sets in include/policies, run with OPA.

``scan(bundle, ["privacy", "ethics"])`` -> ``ScanResult`` (counts per rule set, findings with
rule set, message and field path, and warnings of the same shape for the reviewers, which do not
fail the scan). The privacy and ethics rule sets decide from each input's declaration
(hms.declarations) first, detection second. The OPA adapter is ``engine``; the input document ``input``.
"""

from hms.compliance.engine import PolicySet, RegoTest, load, opa_container_command, opa_test_command, policy_dir
from hms.compliance.input import build_input
from hms.compliance.scan import (
    DEFAULT_RULE_SETS,
    Finding,
    ProcessScanner,
    ScanResult,
    Settings,
    fairness_for,
    scan,
    scan_many,
)

__all__ = [
    "DEFAULT_RULE_SETS",
    "Finding",
    "PolicySet",
    "ProcessScanner",
    "RegoTest",
    "ScanResult",
    "Settings",
    "build_input",
    "fairness_for",
    "load",
    "opa_container_command",
    "opa_test_command",
    "policy_dir",
    "scan",
    "scan_many",
]
