// What the two tiled online-softmax drivers share: attention.cpp (over q, k, v
// tensors) and cache_attention.cpp (over the contiguous and paged KV caches)
// run the same per-row algorithm and finish a row the same way.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

namespace llmkit::attention {

// out = O / l for one row of D, where O and l are the running output and
// softmax sum of the row relative to its running max m (O = sum_j exp(s_j - m)
// v_j, l = sum_j exp(s_j - m)). With an attention sink (gpt-oss; sink = null
// for none) the denominator gains exp(*sink), i.e. exp(*sink - m) relative to
// m; both terms are taken relative to max(m, *sink) so neither exponent can
// overflow. A row that saw no key (m = -inf, l = 0) is written as zeros.
// Without a sink this is row = O * (1 / l), the bits of a plain divide-once.
// row may equal O.
inline void finish_row(const float *O, float m, float l, const float *sink, int64_t D, float *row) {
    float norm = l;
    float keep = 1.0f;  // rescales O and l when the sink exceeds the running max
    if (sink) {
        const float mx = std::max(m, *sink);
        keep = m == -std::numeric_limits<float>::infinity() ? 0.0f : std::exp(m - mx);
        norm = l * keep + std::exp(*sink - mx);
    }
    const float inv = norm > 0.0f ? keep / norm : 0.0f;
    for (int64_t d = 0; d < D; ++d) row[d] = O[d] * inv;
}

}  // namespace llmkit::attention
