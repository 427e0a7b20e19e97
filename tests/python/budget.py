"""How much of the heaviest data-driven tests to run in this stage.

The sanitizer stage (ctest sets LLMKIT_TEST_SANITIZED=1 in an ASan+UBSan
build) is there to catch memory errors and undefined behaviour in llmkit's
code paths, and the reference tokenizers it compares against run there too,
under the preloaded ASan runtime, several times slower than usual. So that
stage runs every k-th item of the largest inputs (the same code paths, a
quarter of the text), and the Release stage runs every item: parity is
checked in full there.
"""

import os

SANITIZED = bool(os.environ.get("LLMKIT_TEST_SANITIZED"))


def thinned(items, every):
    """`items` in the Release stage; every `every`-th item under the sanitizers."""
    return items[::every] if SANITIZED else items
