"""Who may receive an event: the one question fan-out (outbox.emit) and delivery (deliveries.claim) ask.

An event of namespace X reaches a webhook only when the webhook's owner may read X now, by the
organization policy: the owner's access is what a stored principal has today (principals.access_now:
a key's current role, an SSO user's groups as last seen, the operator on the server's machine), and
the read rule is the policy's (`standing(...).role is not None`: internal namespaces for every signed-in
principal, private ones for grantees and admins). An event of no namespace (a ping) reaches the webhook
while its owner has any access at all. A revoked key, or an SSO user once SSO is off, receives nothing;
a revoked grant stops private events from the next one, and deliveries still pending die with the
reason. Nothing else decides this.
"""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from registry.catalog import models as m
from registry.service.access.policy import standing
from registry.service.access.principals import PrincipalGone, access_now
from registry.service.context import settings_of

_MEMO = "pemreg_audience"


@event.listens_for(Session, "after_transaction_end")
def _forget(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the outermost one ended: the next transaction asks afresh
        session.info.pop(_MEMO, None)


def webhook_may_receive(session: Session, webhook: m.Webhook, namespace: str | None) -> bool:
    """True when `webhook.owner` may read `namespace` (None: an event of no namespace, e.g. a ping)."""
    return refusal(session, webhook, namespace) is None


def refusal(session: Session, webhook: m.Webhook, namespace: str | None) -> str | None:
    """None when the webhook's owner may receive an event of `namespace`, else why not (what its
    delivery records). Answers are kept for the transaction (a change fanned out to many webhooks, or a
    batch of claims, asks once per owner and namespace)."""
    memo: dict[tuple[str, str | None], str | None] = session.info.setdefault(_MEMO, {})
    asked = (webhook.owner, namespace)
    if asked not in memo:
        memo[asked] = _why_not(session, webhook.owner, namespace)
    return memo[asked]


def _why_not(session: Session, owner: str, namespace: str | None) -> str | None:
    try:
        access = access_now(session, settings_of(session), owner)
    except PrincipalGone as gone:
        return f"the webhook's owner {owner} may not receive events: {gone}"
    if namespace is None or standing(session, access, namespace).role is not None:
        return None
    return f"the webhook's owner {owner} may not read namespace {namespace}"
