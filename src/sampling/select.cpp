#include "sampling/select.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

namespace llmkit::sampling {

// Compiled for AVX-512, AVX2 and baseline x86-64; the loader picks one. The
// arithmetic is the same float operations in every version (ISO C++ mode
// turns off FMA contraction), so the results are too.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
static void exp_shifted_kernel(const float *in, size_t n, float shift, float *out) {
    for (size_t i = 0; i < n; ++i) out[i] = exp_nonpositive(in[i] - shift);
}

// The sum of x[0, n) in double with eight interleaved accumulators: fast
// (the loop vectorises), and the same order every time. Inlined into each
// caller, so the cloned callers get their own ISA's copy.
static inline double sum_in_fixed_order(const float *x, size_t n) {
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; ++j) acc[j] += double(x[i + size_t(j)]);
    for (; i < n; ++i) acc[i % 8] += double(x[i]);
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

double exp_shifted(const float *in, size_t n, float shift, float *out) {
    exp_shifted_kernel(in, n, shift, out);
    return sum_in_fixed_order(out, n);
}

// The speculative verifier's passes over whole probability rows (one per
// draft position): vectorised like exp_shifted_kernel; a serial double sum
// was a 4-cycle dependency per entry (0.17 ms a row at V = 128k).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
double sum_nonnegative(const float *x, size_t n, bool *bad) {
    // Two simple loops, each of which vectorises (one loop doing both did
    // not). The check is on the bits: a finite float >= 0 has bits up to
    // 0x7F7FFFFF, or is -0 (0x80000000); negatives, infinities and NaNs lie above.
    constexpr uint32_t k_largest = 0x7F7FFFFFu, k_minus_zero = 0x80000000u;
#if defined(__GNUC__)
    typedef uint32_t __attribute__((may_alias)) bits_t;  // the floats' bits, read in place
#else
    typedef uint32_t bits_t;
#endif
    const bits_t *u = reinterpret_cast<const bits_t *>(x);
    uint32_t n_bad = 0;  // (a count vectorises; a max of selected bits did not)
    for (size_t i = 0; i < n; ++i) n_bad += uint32_t(u[i] > k_largest) & uint32_t(u[i] != k_minus_zero);
    *bad = n_bad != 0;
    return sum_in_fixed_order(x, n);
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
double residual_weights(const float *q, double sq, const float *p, double sp, size_t n, double *w) {
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; ++j) {
            const double r = double(q[i + size_t(j)]) / sq - double(p[i + size_t(j)]) / sp;
            w[i + size_t(j)] = r > 0 ? r : 0.0;
            acc[j] += w[i + size_t(j)];
        }
    for (; i < n; ++i) {
        const double r = double(q[i]) / sq - double(p[i]) / sp;
        w[i] = r > 0 ? r : 0.0;
        acc[i % 8] += w[i];
    }
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

namespace {

constexpr int kBinShift = 20;  // 12-bit bins: sign, exponent and 3 mantissa bits
constexpr size_t kBins = size_t(1) << (32 - kBinShift);

struct item {
    uint32_t key;
    uint32_t pos;
    double mass;
};

inline bool before(const item &a, const item &b) { return a.key > b.key || (a.key == b.key && a.pos < b.pos); }

thread_local std::vector<item> tls_items;
thread_local std::vector<double> tls_bin_mass;
thread_local std::vector<uint32_t> tls_bin_count;

// Rearranges a[0..n) so that a[0..m) is the shortest prefix (in `before`
// order) with mass >= target; returns m. Quickselect carrying accepted mass.
size_t prefix_by_mass(item *a, size_t n, double target) {
    size_t lo = 0, hi = n;
    double remaining = target;
    while (hi - lo > 32) {
        if (remaining <= 0) return lo;
        const size_t mid = lo + (hi - lo) / 2;
        item x = a[lo], y = a[mid], z = a[hi - 1];
        if (before(y, x)) std::swap(x, y);
        if (before(z, y)) std::swap(y, z);
        if (before(y, x)) std::swap(x, y);
        const item pivot = y;
        item *m = std::partition(a + lo, a + hi, [&](const item &r) { return before(r, pivot); });
        const size_t im = size_t(m - a);
        double mass = 0;
        for (size_t i = lo; i < im; ++i) mass += a[i].mass;
        if (mass >= remaining) {
            hi = im;
            continue;
        }
        for (size_t i = im; i < hi; ++i) {
            if (a[i].pos == pivot.pos) {
                std::swap(a[i], a[im]);
                break;
            }
        }
        mass += a[im].mass;
        if (mass >= remaining) return im + 1;
        remaining -= mass;
        lo = im + 1;
    }
    std::sort(a + lo, a + hi, before);
    for (size_t i = lo; i < hi; ++i) {
        if (remaining <= 0) return i;
        remaining -= a[i].mass;
        if (remaining <= 0) return i + 1;
    }
    return hi;
}

// Collects the items of one bin.
std::vector<item> &gather(const uint32_t *keys, const float *mass, size_t n, size_t bin) {
    std::vector<item> &g = tls_items;
    g.clear();
    for (size_t i = 0; i < n; ++i)
        if ((keys[i] >> kBinShift) == bin) g.push_back({keys[i], uint32_t(i), mass ? double(mass[i]) : 1.0});
    return g;
}

prefix_cut last_of(const item *a, size_t m, size_t count_before) {
    const item *last = std::max_element(a, a + m, before);  // the latest in `before` order
    prefix_cut c;
    c.key = last->key;
    c.pos = last->pos;
    c.count = count_before + m;
    return c;
}

}  // namespace

prefix_cut select_prefix_by_mass(const uint32_t *keys, const float *mass, size_t n, double target) {
    std::vector<double> &bm = tls_bin_mass;
    std::vector<uint32_t> &bc = tls_bin_count;
    bm.assign(kBins, 0.0);
    bc.assign(kBins, 0);
    for (size_t i = 0; i < n; ++i) {
        const size_t b = keys[i] >> kBinShift;
        bm[b] += mass[i];
        ++bc[b];
    }
    double cum = 0;
    size_t count = 0;
    for (size_t b = kBins; b-- > 0;) {
        if (!bc[b]) continue;
        if (cum + bm[b] >= target) {
            std::vector<item> &g = gather(keys, mass, n, b);
            size_t m = prefix_by_mass(g.data(), g.size(), target - cum);
            if (m == 0) m = 1;  // target - cum rounded to <= 0: the bin's first item ends it
            if (m == 1 && g.size() > 1) std::nth_element(g.begin(), g.begin(), g.end(), before);
            return last_of(g.data(), m, count);
        }
        cum += bm[b];
        count += bc[b];
    }
    prefix_cut all;
    all.all = true;
    all.count = n;
    return all;
}

prefix_cut select_prefix_by_count(const uint32_t *keys, size_t n, size_t k) {
    if (k >= n) {
        prefix_cut all;
        all.all = true;
        all.count = n;
        return all;
    }
    std::vector<uint32_t> &bc = tls_bin_count;
    bc.assign(kBins, 0);
    for (size_t i = 0; i < n; ++i) ++bc[keys[i] >> kBinShift];
    size_t count = 0;
    for (size_t b = kBins; b-- > 0;) {
        if (count + bc[b] >= k) {
            std::vector<item> &g = gather(keys, nullptr, n, b);
            const size_t m = k - count;
            std::nth_element(g.begin(), g.begin() + (m - 1), g.end(), before);
            return last_of(g.data(), m, count);
        }
        count += bc[b];
    }
    prefix_cut all;
    all.all = true;
    all.count = n;
    return all;
}

}  // namespace llmkit::sampling
