"""Errors that describe a user's mistake (bad config, bad corpus, wrong checkpoint).

Entry points catch `TextganError` and print its message without a traceback; anything else is a
bug in textgan and keeps its traceback.
"""


class TextganError(Exception):
    """A problem the user can fix; the message says what and where."""


class ConfigError(TextganError):
    """An unknown key, a wrong type or an impossible value in the configuration."""


class CorpusError(TextganError):
    """A corpus that cannot be read: missing file or column, bad bytes, unknown label, ..."""


class TokenizerError(TextganError):
    """A tokenizer model that does not match what textgan expects (special ids, hash)."""


class CheckpointError(TextganError):
    """A checkpoint that cannot be used here: missing, corrupt, or from another config/tokenizer."""


class SamplingError(TextganError):
    """A sampling request the model cannot serve: an unknown style attribute or class, an empty
    or over-long sentence to reconstruct, an impossible decoding setting."""


class CompileError(TextganError):
    """torch.compile could not build a compiled step (no C++ compiler, no triton, ...)."""


class DamagedCheckpointError(CheckpointError):
    """A checkpoint file that cannot be read back: empty, truncated or otherwise corrupt."""

    def __init__(self, path: object, problem: str) -> None:
        super().__init__(f"{path} is not a readable textgan checkpoint: {problem}")
        self.problem = problem


class RunFolderError(TextganError):
    """A run folder that cannot be used: not a folder, not writable, full, or in use by
    another process."""
