"""``hms serve --env NAME``: the decision service for one environment."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from hms.pipeline_config import load_pipeline_config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the decision API for one environment")
    p.add_argument("--env", required=True, help="environment name from the pipeline config (staging, preprod, prod)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--poll-interval", type=float, default=None,
                   help="seconds between registry generation checks (default: 0.025, at most 0.06)")
    p.add_argument("--decision-log", choices=("on", "off"), default="on",
                   help="record every answer, inputs masked per data class (default: on; database: "
                        "HMS_DECISION_LOG_URL, else the registry's; key: HMS_DECISION_LOG_KEY)")
    p.add_argument("--log-retention", default=None,
                   help="delete logged decisions older than this (Nd or Nh; default: the pipeline config's "
                        "decision_log.retention, 400d unless it says)")
    p.set_defaults(handler=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from hms import effective_time
    from hms.errors import BadInput
    from hms.service.app import create_app
    from hms.service.http import BoundedH11Protocol
    from hms.service.source import RegistrySource

    # The file, not the pinned policy: serving gates nothing, and a replica must start (and say it is not
    # ready) while the registry is unreachable.
    config = load_pipeline_config()
    config.environment(args.env)  # unknown environment → exit 2 before binding a port
    if args.poll_interval is not None and not effective_time.propagation_covers(args.poll_interval):
        # A rarer poll would learn of a rollback after its switch instant and answer from the undone version.
        limit = effective_time.PROPAGATION.total_seconds() / 2
        raise BadInput(f"{args.poll_interval} s is outside (0, {limit:g}] s: replicas must learn of a rollback "
                       "before the instant it takes effect", where="--poll-interval")
    # a bad key file: exit 2 here
    decision_log = _decision_log(args, config.decision_log.retention) if args.decision_log == "on" else None
    if decision_log is not None:
        import sys

        # The log's writer thread runs Python (masking, the insert) beside the event loop; at the default 5 ms
        # switch interval a request arriving meanwhile waits up to 5 ms for the GIL. 0.5 ms bounds that wait.
        sys.setswitchinterval(0.0005)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    app = create_app(RegistrySource(args.env), poll_interval=args.poll_interval, decision_log=decision_log)
    # h11, bounded, rather than uvicorn's default httptools, which buffers a request head of any size.
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False, http=BoundedH11Protocol)
    return 0


def _decision_log(args: argparse.Namespace, configured: str) -> Any:
    import os

    from hms import decision_log_key
    from hms.decision_query import parse_age
    from hms.service.decision_log import DatabaseSink, DecisionLog

    retention = (parse_age(args.log_retention, where="--log-retention") if args.log_retention
                 else parse_age(configured, where="decision_log.retention"))
    return DecisionLog(args.env, DatabaseSink(os.environ.get("HMS_DECISION_LOG_URL") or None),
                       decision_log_key.load(args.env), retention=retention)
