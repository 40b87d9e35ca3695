"""One router per resource of the HMS API; ``ALL`` is what ``hms.web.create_app`` mounts under ``/api``."""

from hms.api.routers import activations, bundles, decisions, deployments, me, policy, protocols, reviews, runs

ALL = [me.router, bundles.router, reviews.router, deployments.router, runs.router, policy.router, protocols.router,
       activations.router, decisions.router]
