"""The registry: the system of record for bundles, reviews, deployments, check results and the audit chain."""
