"""Errors that are the user's to fix: the command line prints their message in one line, no traceback.

Every reader and command raises a subclass of `UserError` for bad input (a missing or corrupt file, a
flag out of range, a run folder of another kind); the message names the file, the item and the problem.
A bug in the program stays an ordinary exception and keeps its traceback.
"""

from __future__ import annotations

USER_ERROR_EXIT_CODE = 2
"""Exit status of the `faithfusion` command for a user error (1 stays for a crash)."""


class UserError(Exception):
    """Bad input or misuse: the message alone tells the user what to change."""
