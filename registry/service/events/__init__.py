"""Events: what the registry tells the outside world about its changes.

- `outbox`: the event rows and pending deliveries, written in the transaction of each change.
- `webhooks`: the receivers (create, edit, rotate the secret, ping), admin-only until namespaces have owners.
- `deliveries`: claiming due deliveries, recording attempts, retries with backoff, dead letters, history.
- `sender`: one signed POST, SSRF-safe (allowed hosts, addresses re-checked at connect, no redirects).
- `deliverer`: the loop `pemreg serve` and `pemreg worker` run.
- `hosts` (PEMREG_WEBHOOK_ALLOWED_HOSTS) and `audience` (who may receive an event of a namespace).
"""
