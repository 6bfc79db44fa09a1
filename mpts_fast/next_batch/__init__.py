"""A real annotation round: `select_next(...)` picks the unlabeled pool items to label next (`mpts-fast select`)."""
from mpts_fast.next_batch.inputs import InputError
from mpts_fast.next_batch.select import Selection, select_next

__all__ = ["InputError", "Selection", "select_next"]
