"""The role a clerk reviews in when ``hms rule review`` is not told (``--role`` left out).

Roles come from the pipeline config's ``users:`` (user → roles). Guessing wrong would count an
approval under a role the clerk did not mean to vouch for, so the role is inferred only when there is
one sensible answer: the reviewer's one review role still missing for this bundle (or, when no role is
missing any more, their one review role at all). Anything else is exit 2 naming the roles to choose
from. Whether the clerk may review at all (author, role held) stays ``approvals.check_review``'s call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from hms.approvals import ApprovalPolicy
from hms.errors import BadInput


def infer(
    user: str,
    *,
    policy: ApprovalPolicy,
    missing: Sequence[str],
    user_roles: Mapping[str, Iterable[str]] | None,
) -> str:
    """The one role ``user`` can mean, or BadInput (``--role``) naming the choices.

    :param policy: the bundle's approval policy (pipeline config, tightened by the protocol)
    :param missing: roles no approval covers yet (``ApprovalStatus.missing_roles``)
    :param user_roles: the config's ``users:``; None when the config has none (then any policy role)
    """
    mine = sorted((user_roles or {}).get(user, ()))
    pool = list(policy.roles) or mine  # a policy naming no roles: any role the clerk holds
    held = pool if user_roles is None else [r for r in pool if r in mine]
    if not held:
        raise BadInput(
            f"{user} holds no review role of this bundle (roles: {', '.join(pool) or 'none'}; "
            f"{user} holds: {', '.join(mine) or 'none'})",
            where="--role",
        )
    choices = [r for r in held if r in missing] or held
    if len(choices) == 1:
        return choices[0]
    still = "still missing" if any(r in missing for r in held) else "held"
    raise BadInput(
        f"{user} could review as {' or '.join(choices)} ({still}): choose one with --role", where="--role"
    )


def select_order(held: Sequence[str], missing: Sequence[str]) -> list[str]:
    """The role select's order for a clerk: the roles they hold that the bundle still misses first.

    carol holds legal and budget; legal is given already → ``[budget, legal]``, so the default is the role
    that can still count. Otherwise the order held is kept (stable).
    """
    return [r for r in held if r in missing] + [r for r in held if r not in missing]
