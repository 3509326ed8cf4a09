"""The local stack: a moto server, SoftHSM2, the API over HTTP, a local schedule and SQS poller. Never deployed."""
