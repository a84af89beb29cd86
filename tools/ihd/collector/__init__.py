"""The uplink collector: receives, authenticates, decodes, de-duplicates and ACKs
device datagrams (ingest.py, the `ihd collector` command), its asyncio UDP server
(server.py), the store on SQLite or PostgreSQL (store.py, pg.py, db.py picks one;
schema.py, reports.py) and the support console web app (console/)."""
