"""The webhook wire format, without the catalog: event types and bodies (`types`), Standard Webhooks
signatures (`signing`) and the typed views the REST API, the client and the CLI share (`views`).

The outbox, the webhooks' rows and delivery live in registry.service.events; this package imports
neither SQLAlchemy nor an HTTP library, so a receiver (`pemreg webhooks listen`) loads only this.
"""
