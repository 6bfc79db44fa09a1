"""A real annotation round: `select_next(...)` picks the unlabeled pool items to label next (`mpts-fast select`)."""
from mpts_fast.select.inputs import InputError
from mpts_fast.select.next_batch import Selection, select_next

__all__ = ["InputError", "Selection", "select_next"]
