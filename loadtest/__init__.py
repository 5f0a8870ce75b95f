"""Load tests for Quorum's feed: a locust scenario and a headless benchmark driver.

`loadtest.bench` starts the whole stack itself (embedded NATS with `sync_interval:
always`, a synthetic dataset, Granian feed workers) and drives it over loopback;
`loadtest/locustfile.py` drives a server someone else started. Nothing here is imported
by Quorum itself, and nothing here may change what the server does.
"""
