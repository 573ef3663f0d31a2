"""What became of a report, from the receipts and placements topics read whole (view.py): `ceasefire
report-status` reads them without any worker. The read API answers from the archive instead."""
