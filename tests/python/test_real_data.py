"""Real logits of a tiny trained Llama (stories260K, from the shared test data)."""

import numpy as np

import llmkit


def load(data_dir):
    model = data_dir / "models" / "stories260K"
    logits = np.fromfile(model / "logits_pos0-3.f32", dtype="<f4").reshape(4, 512)
    ids = [int(t) for t in (model / "greedy_ids_n200.txt").read_text().split()]
    assert len(ids) == 200
    return logits, ids


def test_greedy_reproduces_the_reference_run(data_dir):
    logits, ids = load(data_dir)
    want = np.array(ids[1:5], np.int32)  # ids[i + 1] is the argmax of the logits at position i
    np.testing.assert_array_equal(np.argmax(logits, axis=1), want)  # the data is what it says
    np.testing.assert_array_equal(llmkit.sample(logits, temperature=0), want)
    np.testing.assert_array_equal(llmkit.SamplerChain().greedy().sample(logits), want)
    for i in range(4):
        assert llmkit.SamplerChain().top_k(1).sample(logits[i]) == want[i]


def test_real_logits_in_other_dtypes_and_layouts(data_dir):
    logits, ids = load(data_dir)
    want = np.array(ids[1:5], np.int32)
    np.testing.assert_array_equal(llmkit.sample(logits.astype(np.float16), temperature=0), want)
    np.testing.assert_array_equal(llmkit.sample(np.asfortranarray(logits), temperature=0), want)


def test_top_p_on_real_logits_keeps_the_greedy_token(data_dir):
    logits, ids = load(data_dir)
    kept = llmkit.SamplerChain().top_p(0.9).apply(logits)
    for i in range(4):
        assert np.isfinite(kept[i, ids[i + 1]])
        probs = np.exp(logits[i].astype(np.float64) - logits[i].max())
        probs /= probs.sum()
        mass = probs[np.isfinite(kept[i])].sum()
        assert mass >= np.float32(0.9) - 1e-9
        # minimal: dropping the least likely kept token falls below p
        smallest = probs[np.isfinite(kept[i])].min()
        assert mass - smallest < 0.9
