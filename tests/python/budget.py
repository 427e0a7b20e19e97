"""How much of the heaviest data-driven tests to run in this stage.

The sanitizer stage (ctest sets LLMKIT_TEST_SANITIZED=1 in an ASan+UBSan
build) is there to catch memory errors and undefined behaviour in llmkit's
code paths, and the reference tokenizers it compares against run there too,
under the preloaded ASan runtime, several times slower than usual. So that
stage runs every k-th item of the largest inputs and a fifth of each
property test's examples (the same code paths, less text), and the Release
stage runs every item and every example: parity is checked in full there.
"""

import os

SANITIZED = bool(os.environ.get("LLMKIT_TEST_SANITIZED"))


def thinned(items, every):
    """`items` in the Release stage; every `every`-th item under the sanitizers."""
    return items[::every] if SANITIZED else items


def examples(n):
    """A property test's max_examples: `n` in the Release stage, a fifth (at least 10) under the sanitizers."""
    return max(n // 5, 10) if SANITIZED else n
