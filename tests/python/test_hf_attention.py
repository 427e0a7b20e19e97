"""llmkit.hf: llmkit's attention as a transformers attention implementation ("llmkit"), checked
against transformers' own ("sdpa", or "eager" where "sdpa" lacks the feature) on small random
models: the same logits on every real token of a left-padded batch and the same greedy tokens."""

import copy

import pytest

torch = pytest.importorskip("torch")  # (sanitizer runs import no torch: then this skips)
import transformers  # noqa: E402  (installed with torch by scripts/install-deps.sh)

import llmkit.hf  # noqa: E402

NAME = llmkit.hf.register()
LENS = [150, 70, 13]  # left-padded to 150: pads of 0, 80 and 137 keys (whole 64-key tiles)


def twins(model_cls, cfg, peer):
    """The same random model twice: with the peer's attention and with llmkit's."""
    torch.manual_seed(0)
    ref = model_cls._from_config(copy.deepcopy(cfg), attn_implementation=peer).eval()
    mine = model_cls._from_config(copy.deepcopy(cfg), attn_implementation=NAME).eval()
    mine.load_state_dict(ref.state_dict())
    assert ref.config._attn_implementation == peer and mine.config._attn_implementation == NAME
    return ref, mine


def padded_batch(vocab):
    g = torch.Generator().manual_seed(1)
    S = max(LENS)
    ids = torch.randint(0, vocab, (len(LENS), S), generator=g)
    mask = torch.zeros(len(LENS), S, dtype=torch.long)
    for b, n in enumerate(LENS):
        mask[b, S - n:] = 1
    return ids, mask


def check_twins(ref, mine, vocab, tol, new_tokens=8):
    ids, mask = padded_batch(vocab)
    S = ids.shape[1]
    with torch.no_grad():
        a = ref(input_ids=ids, attention_mask=mask).logits
        b = mine(input_ids=ids, attention_mask=mask).logits
    diff = max((a[i, S - n:] - b[i, S - n:]).abs().max().item() for i, n in enumerate(LENS))
    assert diff <= tol, diff
    g_ref = ref.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens, do_sample=False)
    g_mine = mine.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens, do_sample=False)
    assert torch.equal(g_ref, g_mine)


def llama_config(**kw):
    return transformers.LlamaConfig(vocab_size=256, hidden_size=256, intermediate_size=384, num_hidden_layers=2,
                                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, **kw)


def test_llama_gqa_matches_sdpa_on_a_left_padded_batch():
    ref, mine = twins(transformers.LlamaForCausalLM, llama_config(), "sdpa")
    check_twins(ref, mine, 256, 2e-5)


def test_llama_static_cache_generation_matches_sdpa():
    ref, mine = twins(transformers.LlamaForCausalLM, llama_config(), "sdpa")
    ids, mask = padded_batch(256)
    kw = dict(max_new_tokens=6, do_sample=False, cache_implementation="static")
    assert torch.equal(ref.generate(input_ids=ids, attention_mask=mask, **kw),
                       mine.generate(input_ids=ids, attention_mask=mask, **kw))


def test_llama_bfloat16_is_as_close_to_float32_as_sdpa():
    ref, mine = twins(transformers.LlamaForCausalLM, llama_config(), "sdpa")
    ids, mask = padded_batch(256)
    S = ids.shape[1]
    with torch.no_grad():
        exact = ref(input_ids=ids, attention_mask=mask).logits
        ref_bf, mine_bf = ref.to(torch.bfloat16), mine.to(torch.bfloat16)
        a = ref_bf(input_ids=ids, attention_mask=mask).logits.float()
        b = mine_bf(input_ids=ids, attention_mask=mask).logits.float()
    err = lambda x: max((x[i, S - n:] - exact[i, S - n:]).abs().max().item() for i, n in enumerate(LENS))  # noqa
    assert err(b) <= 2 * err(a) + 1e-2, (err(b), err(a))


def test_gemma2_softcap_and_sliding_window_match_eager():
    # sdpa has no soft-capping: eager is transformers' reference for it.
    cfg = transformers.Gemma2Config(vocab_size=256, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                                    num_attention_heads=4, num_key_value_heads=2, head_dim=32, sliding_window=40,
                                    attn_logit_softcapping=20.0, final_logit_softcapping=30.0,
                                    max_position_embeddings=512)
    ref, mine = twins(transformers.Gemma2ForCausalLM, cfg, "eager")
    with torch.no_grad():  # scores of tens, so that the cap of 20 bends them (small ones pass nearly unchanged)
        for layer in list(ref.model.layers) + list(mine.model.layers):
            layer.self_attn.q_proj.weight.mul_(40.0)
    check_twins(ref, mine, 256, 1e-4)


def test_gpt_oss_sinks_and_sliding_window_match_eager():
    cfg = transformers.GptOssConfig(vocab_size=256, hidden_size=128, intermediate_size=128, num_hidden_layers=2,
                                    num_attention_heads=4, num_key_value_heads=2, head_dim=32, sliding_window=40,
                                    num_local_experts=4, num_experts_per_tok=2, max_position_embeddings=512)
    ref, mine = twins(transformers.GptOssForCausalLM, cfg, "eager")
    with torch.no_grad():  # sinks of either sign, around the scores' scale
        for layer in list(ref.model.layers) + list(mine.model.layers):
            layer.self_attn.sinks.copy_(torch.linspace(-2.0, 2.0, layer.self_attn.sinks.numel()))
    check_twins(ref, mine, 256, 2e-5)


def test_no_mask_is_causal_over_the_first_keys_as_sdpa():
    # transformers' "sdpa" with no mask and more keys than queries (a prefill into an empty static
    # cache) attends causally over the first Sq keys; a decode step (Sq = 1) over all of them.
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(2, h, s, 32, generator=g) for h, s in ((4, 5), (2, 9), (2, 9)))
    F = torch.nn.functional
    got, _ = llmkit.hf.attention_forward(None, q, k, v, None)
    want = F.scaled_dot_product_attention(q, k[:, :, :5], v[:, :, :5], is_causal=True, enable_gqa=True)
    assert (got - want.transpose(1, 2)).abs().max().item() <= 1e-5
    got1, _ = llmkit.hf.attention_forward(None, q[:, :, :1], k, v, None)
    want1 = F.scaled_dot_product_attention(q[:, :, :1], k, v, enable_gqa=True)
    assert (got1 - want1.transpose(1, 2)).abs().max().item() <= 1e-5


def test_outside_no_grad_the_forward_works_and_a_backward_raises():
    ref, mine = twins(transformers.LlamaForCausalLM, llama_config(), "sdpa")
    ids, mask = padded_batch(256)
    S = ids.shape[1]
    a = ref(input_ids=ids, attention_mask=mask).logits
    b = mine(input_ids=ids, attention_mask=mask).logits  # parameters that require grad: q, k, v do too
    assert b.requires_grad
    assert max((a[i, S - n:] - b[i, S - n:]).abs().max().item() for i, n in enumerate(LENS)) <= 2e-5
    with pytest.raises(RuntimeError, match="llmkit attention has no backward pass"):
        b.sum().backward()


def test_unsupported_arguments_are_refused():
    q = torch.randn(1, 4, 8, 32)
    k = torch.randn(1, 2, 8, 32)
    with pytest.raises(ValueError, match="dropout"):
        llmkit.hf.attention_forward(None, q, k, k, None, dropout=0.1)
    with pytest.raises(ValueError, match="position_bias"):
        llmkit.hf.attention_forward(None, q, k, k, None, position_bias=torch.zeros(1, 4, 8, 8))
    with pytest.raises(ValueError, match="LLMKIT_ERROR"):  # llmkit's own checks: 4 query heads over 3 kv heads
        llmkit.hf.attention_forward(None, q, torch.randn(1, 3, 8, 32), torch.randn(1, 3, 8, 32), None)


def test_deepseek_v3_whose_v_head_dim_differs_matches_sdpa():
    # Multi-head latent attention as transformers runs it: q and k of 32 + 16 rotary dimensions, v of 32
    # (DeepSeek-V3's 128 + 64 and 128, scaled down), which llmkit takes without padding v.
    cfg = transformers.DeepseekV3Config(
        vocab_size=256, hidden_size=256, intermediate_size=384, moe_intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, n_routed_experts=4, num_experts_per_tok=2, n_group=1,
        topk_group=1, first_k_dense_replace=1, q_lora_rank=64, kv_lora_rank=64, qk_nope_head_dim=32,
        qk_rope_head_dim=16, v_head_dim=32, max_position_embeddings=512)
    ref, mine = twins(transformers.DeepseekV3ForCausalLM, cfg, "sdpa")
    check_twins(ref, mine, 256, 2e-5)
