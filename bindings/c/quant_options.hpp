// Checks of llmkit_quantize_options shared by quantize and convert.
#pragma once

#include <cstdint>

#include "core/error.hpp"
#include "llmkit/llmkit.h"
#include "quant/formats.hpp"
#include "quant/gguf_blocks.hpp"

namespace llmkit::capi {

// options.zero_point: an llmkit_quant_zero_point, and 0 (the format's own
// choice) unless `type` is one of the int4 packings that have zero points to
// choose; elsewhere a symmetric or asymmetric request would be ignored.
inline void require_zero_point(int32_t zero_point, int32_t type, const char *what) {
    if (zero_point < 0 || zero_point > 2)
        core::fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.zero_point must be an llmkit_quant_zero_point (0, 1 or 2), got ",
                   zero_point);
    if (zero_point == 0) return;
    const quant::format_traits *f = quant::find_format(type);
    if (f && (f->fam == quant::family::gptq || f->fam == quant::family::awq)) return;
    const quant::type_traits *t = f ? nullptr : quant::find_type(type);
    core::fail(LLMKIT_ERROR_UNSUPPORTED, what, " ", f ? f->name : t ? t->name : "?",
               ": options.zero_point applies to the int4 packings (gptq_int4*, awq_int4*) only; pass 0");
}

}  // namespace llmkit::capi
