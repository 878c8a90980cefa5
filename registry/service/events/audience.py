"""Who may receive an event: the one policy both fan-out and delivery ask.

An event of namespace X reaches a webhook only when the webhook's owner may read X. Until namespaces
carry visibility and grants, webhooks are created by admins only, and an owner may read everything
while it is an active admin key, or a local principal (the CLI acting on the catalog it can open);
a revoked or demoted key's webhooks receive nothing more. The organization model replaces the body of
`webhook_may_receive` with its read check; nothing else decides this.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.catalog import models as m


def webhook_may_receive(session: Session, webhook: m.Webhook, namespace: str | None) -> bool:
    """True when `webhook.owner` may read `namespace` (None: an event of no namespace, e.g. a ping).
    Answers are kept for the session (one transaction here), so a change fanned out to many webhooks
    asks once per owner and namespace."""
    memo: dict[tuple[str, str | None], bool] = session.info.setdefault("pemreg_audience", {})
    asked = (webhook.owner, namespace)
    if asked not in memo:
        memo[asked] = _owner_may_read(session, webhook.owner, namespace)
    return memo[asked]


def _owner_may_read(session: Session, owner: str, namespace: str | None) -> bool:
    key = session.scalar(select(m.ApiKey).where(m.ApiKey.name == owner))
    if key is None:
        return True  # a local principal: whoever opens the catalog database owns it
    return key.revoked_at is None and key.role == "admin"
