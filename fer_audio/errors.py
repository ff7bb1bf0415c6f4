"""The one base of every error fer-audio reports to the user as a single line.

Each stage raises its own subclass (ConfigError, SourceError, ModelError, ...)
with a message that names what and where; the CLI catches this base, prints
the line and exits 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class FerAudioError(Exception):
    """Bad input or an unusable resource, phrased as one line naming it and the problem."""
