"""Command-line tools of llmkit (``llmkit-quantize``)."""
