"""The runtime's exit codes, the one place they are defined (the tool XMLs' <stdio> and
docs/architecture.md, "Exit codes", describe the same contract)."""

from __future__ import annotations

EXIT_OK = 0  # also after Finish and after the idle timeout
EXIT_OUTPUT = 1  # a Galaxy output cannot be written (disk full, quota, permissions)
EXIT_INPUT = 2  # input problems: one line each on stderr, what is wrong and the fix
EXIT_BUG = 70  # sysexits.h EX_SOFTWARE: the runtime's own fault, one line, never a traceback
EXIT_TERMINATED = 143  # 128 + SIGTERM: Galaxy's Stop
