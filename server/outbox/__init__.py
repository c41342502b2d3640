"""The transactional outbox: one generic worker (`worker.py`) and one handler per kind of work
(`dealer_delivery.py`; email sends and drip steps next). The tables and their lease rules are
storage's (`server.storage.outbox`)."""
