"""The worker's stages, Faust-free: each takes a batch of messages and says what goes to which partition.

    crime-reports ─intake─▶ register (by crime_ref; ─register─▶ ledger (by suspect) ─ledger─▶ candidates
                            merges to every partition)                                       (1 partition)
    harm-ranking ◀─ranker─ candidates

The Faust adapter (`agents/topology.py`) and the in-process driver
(`streams/driver.py`, what `harmrank rank` runs) hand these very classes their
batches, so one event's way from the intake to the ranker is read here alone.
"""
from .base import CANDIDATES, DLQ, INPUT, LEDGER, OUTPUT, REGISTER, Message, Work
from .intake import IntakeStage
from .ledger import LedgerStage
from .ranker import RankerStage
from .register import RegisterStage

__all__ = ["CANDIDATES", "DLQ", "INPUT", "LEDGER", "OUTPUT", "REGISTER", "Message", "Work", "IntakeStage",
           "RegisterStage", "LedgerStage", "RankerStage"]
