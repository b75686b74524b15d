"""What every command line shares: a one-line error instead of a traceback, and one meaning per
exit code across commands.

    0  done
    1  the work failed (a server, a model or a row that failed; the message names the stage)
    2  bad input or set-up: an unusable question, file or setting, a missing knowledge base or
       dependency; nothing was started, or nothing was changed
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from ragreel.errors import DependencyMissing, InputError, KnowledgeBaseError, RagreelError

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def exit_code(error: BaseException) -> int:
    bad_input = isinstance(error, InputError | KnowledgeBaseError | DependencyMissing)
    return EXIT_BAD_INPUT if bad_input else EXIT_FAILED


def run_command(body: Callable[[], int], command: str) -> int:
    """Run a command's body; any error becomes one line on stderr and its exit code."""
    try:
        return body()
    except RagreelError as error:
        print(f"error: {error}", file=sys.stderr)
        return exit_code(error)
    except KeyboardInterrupt:
        print(f"error: [{command}] interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - the CLI's job is a one-line reason, not a traceback
        print(f"error: [{command}] {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_FAILED
