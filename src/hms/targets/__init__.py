"""Where a deployment lands: one backend per way of running the decision service.

- ``hms.targets.kubernetes.KubernetesTarget``: a ConfigMap per protocol in the
  environment's namespace (current / previous bundle hash, ``activate_at``) and a
  rollout restart of the ``hms-api`` Deployment after each change.

The backends are imported by their own module path: importing this package does
not pull in the ``kubernetes`` client.
"""
