"""llmkit's attention inside Hugging Face transformers models.

transformers picks a model's attention function by name (``attn_implementation``)
from a registry it lets others add to. :func:`register` adds ``"llmkit"``::

    import llmkit.hf
    from transformers import AutoModelForCausalLM

    llmkit.hf.register()
    model = AutoModelForCausalLM.from_pretrained(name, attn_implementation="llmkit")
    # or, on a loaded model: model.set_attn_implementation("llmkit")

Every attention layer of the model then runs :func:`llmkit.attention` on the
query, key and value states transformers hands it:

- grouped-query attention without ``repeat_kv`` (llmkit reads each kv head
  once for its query heads);
- the masks transformers builds for its ``"sdpa"`` implementation (boolean,
  ``[B, 1, Sq, Skv]``: padding, causality, sliding windows), read in place;
  whole tiles of keys they hide are skipped, so a left-padded batch pays
  little for its padding;
- Gemma 2's logit soft-capping (``softcap``) and gpt-oss's attention sinks
  (``s_aux``), which ``"sdpa"`` lacks;
- DeepSeek's attention (V2, V3), whose values have a head_dim of their own,
  without padding them.

It runs on as many threads as torch may use (``torch.get_num_threads()``).
A forward pass outside ``torch.no_grad()`` works; a backward pass through
it raises (llmkit's attention has no backward). It takes no dropout
(inference only) and no ``position_bias`` (T5's relative buckets): those
raise ``ValueError``. Attention weights are never returned
(``output_attentions`` gives None, as with ``"sdpa"``).

A row that sees no key at all (a padding query under left padding) comes out
as zeros, where torch's SDPA gives NaN or a uniform average; such rows are
padding, which the model's outputs never use.
"""

from __future__ import annotations

from typing import Any, Optional

import torch  # transformers' models are torch modules

from ._attention import attention

NAME = "llmkit"


class _NoBackward(torch.autograd.Function):
    """llmkit's attention under autograd (a forward pass outside no_grad): its backward raises, where a plain
    call would leave q, k and v without gradients."""

    @staticmethod
    def forward(ctx: Any, q: Any, k: Any, v: Any, options: dict) -> Any:
        return attention(q, k, v, **options)

    @staticmethod
    def backward(ctx: Any, grad: Any) -> Any:
        raise RuntimeError('llmkit attention has no backward pass (it is for inference): train with '
                           'attn_implementation="sdpa" or "eager"')


def attention_forward(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, dropout: float = 0.0,
                      scaling: Optional[float] = None, is_causal: Optional[bool] = None, **kwargs: Any):
    """An attention function of transformers' ``AttentionInterface``.

    query ``[B, Hq, Sq, D]``, key ``[B, Hkv, Skv, D]`` and value
    ``[B, Hkv, Skv, Dv]`` (torch tensors, as transformers' attention modules
    pass them; Dv differs from D in DeepSeek's models); returns
    ``(out [B, Sq, Hq, Dv], None)``.
    """
    if dropout:
        raise ValueError(f"llmkit attention: dropout {dropout} (llmkit's attention is for inference; "
                         "call model.eval())")
    if kwargs.get("position_bias") is not None:
        raise ValueError("llmkit attention: position_bias (relative position buckets) is not supported")
    q_len, kv_len = query.shape[2], key.shape[2]
    if is_causal is None:
        is_causal = getattr(module, "is_causal", True)
    # As transformers' "sdpa": with no mask, causal for a prefill, and a
    # prefill into an empty static cache sees its first q_len keys only (the
    # rest are the cache's unwritten slots).
    causal = bool(attention_mask is None and is_causal and q_len > 1)
    if causal and kv_len > q_len:
        key, value = key[:, :, :q_len], value[:, :, :q_len]
    softcap = kwargs.get("softcap")
    sinks = kwargs.get("s_aux")
    options = dict(causal=causal, mask=attention_mask,  # (llmkit.attention takes bool and float masks)
                   scale=float(scaling) if scaling else None, softcap=float(softcap) if softcap else None,
                   sinks=sinks.detach().float() if sinks is not None else None,
                   num_threads=torch.get_num_threads())  # as many threads as torch is allowed
    q, k, v = query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v)):
        return _NoBackward.apply(q, k, v, options), None
    return attention(q, k, v, **options), None


def register(name: str = NAME) -> str:
    """Registers :func:`attention_forward` with transformers as ``name`` (with
    the ``"sdpa"`` mask builder), and returns ``name`` for ``attn_implementation``."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(name, attention_forward)
    AttentionMaskInterface.register(name, sdpa_mask)
    return name
