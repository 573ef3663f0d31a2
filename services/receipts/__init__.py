"""What became of a report, answered by any worker: the receipts and placements topics, read whole
into memory (view.py), and `GET /reports/{source}/{report_id}` over them (api.py)."""
