#include "alexnet_resample.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#define PRECISION_BITS 22
#define HALF (1 << (PRECISION_BITS - 1))

static inline uint8_t clip8(int32_t v) {
    v >>= PRECISION_BITS;
    return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v;
}

/// One output pixel of the horizontal pass: n taps of weights k over the pixels at p.
static inline void horizontal_pixel(const uint8_t *p, const int32_t *k, int n, uint8_t *out) {
    int32_t s0 = HALF, s1 = HALF, s2 = HALF;
    for (int t = 0; t < n; t++) {
        s0 += p[3 * t] * k[t];
        s1 += p[3 * t + 1] * k[t];
        s2 += p[3 * t + 2] * k[t];
    }
    out[0] = clip8(s0);
    out[1] = clip8(s1);
    out[2] = clip8(s2);
}

static void horizontal_portable(const uint8_t *src, size_t src_stride, int rows, uint8_t *dst, size_t dst_stride,
                                int out_width, const int32_t *first, const int32_t *count, const int32_t *weights, int taps) {
    for (int r = 0; r < rows; r++) {
        const uint8_t *row = src + (size_t)r * src_stride;
        uint8_t *out = dst + (size_t)r * dst_stride;
        for (int x = 0; x < out_width; x++)
            horizontal_pixel(row + (size_t)first[x] * 3, weights + (size_t)x * taps, count[x], out + 3 * x);
    }
}

static void vertical_portable(const uint8_t *src, size_t src_stride, uint8_t *dst, size_t dst_stride, int out_height,
                              int row_bytes, const int32_t *first, const int32_t *count, const int32_t *weights, int taps) {
    int32_t *acc = malloc(sizeof(int32_t) * (size_t)row_bytes);
    for (int y = 0; y < out_height; y++) {
        for (int j = 0; j < row_bytes; j++) acc[j] = HALF;
        for (int t = 0; t < count[y]; t++) {
            const uint8_t *row = src + (size_t)(first[y] + t) * src_stride;
            int32_t w = weights[(size_t)y * taps + t];
            for (int j = 0; j < row_bytes; j++) acc[j] += row[j] * w;
        }
        uint8_t *out = dst + (size_t)y * dst_stride;
        for (int j = 0; j < row_bytes; j++) out[j] = clip8(acc[j]);
    }
    free(acc);
}

// AVX2: two taps of one output pixel per 256-bit multiply. Eight source bytes (taps t and t+1,
// plus two bytes of t+2) widen to eight int32 lanes; the weights vector is
// (w_t, w_t, w_t, w_t+1, w_t+1, w_t+1, 0, 0), so the unused lanes add nothing.
__attribute__((target("avx2"))) static void horizontal_avx2(const uint8_t *src, size_t src_stride, const uint8_t *src_end,
                                                            int rows, uint8_t *dst, size_t dst_stride, int out_width,
                                                            const int32_t *first, const int32_t *count,
                                                            const int32_t *weights, int taps) {
    int pairs = (taps + 1) / 2;
    int32_t *expanded = aligned_alloc(32, sizeof(int32_t) * 8 * (size_t)pairs * (size_t)out_width + 32);
    for (int x = 0; x < out_width; x++) {
        for (int q = 0; q < pairs; q++) {
            int32_t *e = expanded + ((size_t)x * pairs + q) * 8;
            int t = 2 * q;
            int32_t a = t < count[x] ? weights[(size_t)x * taps + t] : 0;
            int32_t b = t + 1 < count[x] ? weights[(size_t)x * taps + t + 1] : 0;
            e[0] = e[1] = e[2] = a;
            e[3] = e[4] = e[5] = b;
            e[6] = e[7] = 0;
        }
    }
    const __m256i fold = _mm256_setr_epi32(3, 4, 5, 7, 7, 7, 7, 7);
    const __m256i half = _mm256_setr_epi32(HALF, HALF, HALF, 0, 0, 0, 0, 0);
    // Four rows per pass share each weight load (the expanded weights outgrow L1 for wide outputs).
    // Rows whose every 8-byte load stays inside the image take this path; the rest go one by one.
    size_t reach = 0;
    for (int x = 0; x < out_width; x++) {
        size_t end = (size_t)first[x] * 3 + 6 * (size_t)((count[x] + 1) / 2) + 2;
        if (end > reach) reach = end;
    }
    int safe = 0;
    while (safe < rows && src + (size_t)safe * src_stride + reach <= src_end) safe++;
    int r = 0;
    for (; r + 3 < safe; r += 4) {
        const uint8_t *row0 = src + (size_t)r * src_stride;
        uint8_t *out0 = dst + (size_t)r * dst_stride;
        for (int x = 0; x < out_width; x++) {
            int used = (count[x] + 1) / 2;
            const uint8_t *p = row0 + (size_t)first[x] * 3;
            const int32_t *e = expanded + (size_t)x * pairs * 8;
            __m256i a0 = half, a1 = half, a2 = half, a3 = half;
            for (int q = 0; q < used; q++) {
                __m256i w = _mm256_load_si256((const __m256i *)(e + 8 * q));
                const uint8_t *pq = p + 6 * q;
                a0 = _mm256_add_epi32(a0, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)pq)), w));
                a1 = _mm256_add_epi32(a1, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(pq + src_stride))), w));
                a2 = _mm256_add_epi32(a2, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(pq + 2 * src_stride))), w));
                a3 = _mm256_add_epi32(a3, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(pq + 3 * src_stride))), w));
            }
            a0 = _mm256_add_epi32(a0, _mm256_permutevar8x32_epi32(a0, fold));
            a1 = _mm256_add_epi32(a1, _mm256_permutevar8x32_epi32(a1, fold));
            a2 = _mm256_add_epi32(a2, _mm256_permutevar8x32_epi32(a2, fold));
            a3 = _mm256_add_epi32(a3, _mm256_permutevar8x32_epi32(a3, fold));
            __m128i s01 = _mm_packs_epi32(_mm_srai_epi32(_mm256_castsi256_si128(a0), PRECISION_BITS),
                                          _mm_srai_epi32(_mm256_castsi256_si128(a1), PRECISION_BITS));
            __m128i s23 = _mm_packs_epi32(_mm_srai_epi32(_mm256_castsi256_si128(a2), PRECISION_BITS),
                                          _mm_srai_epi32(_mm256_castsi256_si128(a3), PRECISION_BITS));
            __m128i b = _mm_packus_epi16(s01, s23);
            int32_t v0 = _mm_cvtsi128_si32(b), v1 = _mm_extract_epi32(b, 1), v2 = _mm_extract_epi32(b, 2), v3 = _mm_extract_epi32(b, 3);
            uint8_t *o = out0 + 3 * x;
            memcpy(o, &v0, 3);
            memcpy(o + dst_stride, &v1, 3);
            memcpy(o + 2 * dst_stride, &v2, 3);
            memcpy(o + 3 * dst_stride, &v3, 3);
        }
    }
    for (; r < rows; r++) {
        const uint8_t *row = src + (size_t)r * src_stride;
        uint8_t *out = dst + (size_t)r * dst_stride;
        for (int x = 0; x < out_width; x++) {
            const uint8_t *p = row + (size_t)first[x] * 3;
            int n = count[x];
            int used = (n + 1) / 2;
            if (p + 6 * used + 2 > src_end) {   // the 8-byte loads would read past the image
                horizontal_pixel(p, weights + (size_t)x * taps, n, out + 3 * x);
                continue;
            }
            const int32_t *e = expanded + (size_t)x * pairs * 8;
            __m256i acc = half;
            for (int q = 0; q < used; q++) {
                __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p + 6 * q)));
                acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(v, _mm256_load_si256((const __m256i *)(e + 8 * q))));
            }
            acc = _mm256_add_epi32(acc, _mm256_permutevar8x32_epi32(acc, fold));
            __m128i s = _mm_srai_epi32(_mm256_castsi256_si128(acc), PRECISION_BITS);
            s = _mm_packus_epi16(_mm_packs_epi32(s, s), s);
            int32_t bytes = _mm_cvtsi128_si32(s);
            memcpy(out + 3 * x, &bytes, 3);
        }
    }
    free(expanded);
}

__attribute__((target("avx2"))) static void vertical_avx2(const uint8_t *src, size_t src_stride, uint8_t *dst,
                                                          size_t dst_stride, int out_height, int row_bytes,
                                                          const int32_t *first, const int32_t *count,
                                                          const int32_t *weights, int taps) {
    int vec = row_bytes / 16 * 16;
    const __m256i half = _mm256_set1_epi32(HALF);
    for (int y = 0; y < out_height; y++) {
        uint8_t *out = dst + (size_t)y * dst_stride;
        const int32_t *k = weights + (size_t)y * taps;
        for (int j = 0; j < vec; j += 16) {
            __m256i a0 = half, a1 = half;
            for (int t = 0; t < count[y]; t++) {
                const uint8_t *row = src + (size_t)(first[y] + t) * src_stride + j;
                __m256i w = _mm256_set1_epi32(k[t]);
                __m128i b = _mm_loadu_si128((const __m128i *)row);
                a0 = _mm256_add_epi32(a0, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(b), w));
                a1 = _mm256_add_epi32(a1, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_srli_si128(b, 8)), w));
            }
            a0 = _mm256_srai_epi32(a0, PRECISION_BITS);
            a1 = _mm256_srai_epi32(a1, PRECISION_BITS);
            __m256i words = _mm256_permute4x64_epi64(_mm256_packs_epi32(a0, a1), 0xD8);
            __m128i bytes = _mm_packus_epi16(_mm256_castsi256_si128(words), _mm256_extracti128_si256(words, 1));
            _mm_storeu_si128((__m128i *)(out + j), bytes);
        }
        for (int j = vec; j < row_bytes; j++) {
            int32_t s = HALF;
            for (int t = 0; t < count[y]; t++) s += src[(size_t)(first[y] + t) * src_stride + j] * k[t];
            out[j] = clip8(s);
        }
    }
}

/// One output sample of the single-channel horizontal pass.
static inline uint8_t plane_sample(const uint8_t *p, const int32_t *k, int n) {
    int32_t s = HALF;
    for (int t = 0; t < n; t++) s += p[t] * k[t];
    return clip8(s);
}

static void plane_horizontal_portable(const uint8_t *src, size_t src_stride, int rows, uint8_t *dst, size_t dst_stride,
                                      int out_width, const int32_t *first, const int32_t *count, const int32_t *weights,
                                      int taps) {
    for (int r = 0; r < rows; r++)
        for (int x = 0; x < out_width; x++)
            dst[(size_t)r * dst_stride + x] = plane_sample(src + (size_t)r * src_stride + first[x], weights + (size_t)x * taps, count[x]);
}

// AVX2, single channel (a Y, Cb or Cr plane): eight outputs per 256-bit vector. Outputs x..x+3
// read their taps from one 16-byte window in lane 0 and x+4..x+7 from another in lane 1, which
// holds when each four outputs' taps span at most 16 bytes (reductions up to about 2×). Per tap,
// a byte shuffle puts output i's pixel into int32 lane i (zero where it has no such tap), one
// multiply by the eight weights, one add: the same int32 sums as Pillow's. Groups of eight whose
// taps do not fit the windows go output by output, eight taps per multiply.
typedef struct {
    int32_t base[2];    // window starts for lanes 0 and 1; -1: the group goes output by output
    int32_t taps;       // taps of the widest output in the group
    int32_t offset;     // into the index and weight tables, in vectors
} plane_group;

__attribute__((target("avx2"))) static void plane_horizontal_avx2(const uint8_t *src, size_t src_stride, const uint8_t *src_end,
                                                                  int rows, uint8_t *dst, size_t dst_stride, int out_width,
                                                                  const int32_t *first, const int32_t *count,
                                                                  const int32_t *weights, int taps) {
    int groups = (out_width + 7) / 8;
    plane_group *group = malloc(sizeof(plane_group) * (size_t)groups);
    int vectors = 0;
    for (int g = 0; g < groups; g++) {
        plane_group *G = &group[g];
        int fits = 1, widest = 0;
        for (int lane = 0; lane < 2; lane++) {
            int x0 = 8 * g + 4 * lane;
            G->base[lane] = x0 < out_width ? first[x0] : first[8 * g];
            for (int i = x0; i < x0 + 4 && i < out_width; i++) {
                if (first[i] < G->base[lane] || first[i] + count[i] - G->base[lane] > 16) fits = 0;
                if (count[i] > widest) widest = count[i];
            }
        }
        if (!fits) G->base[0] = G->base[1] = -1;
        G->taps = widest;
        G->offset = vectors;
        if (fits) vectors += widest;
    }
    // Per fitting group and tap: the shuffle indices then the weights, one vector each.
    __m256i *table = aligned_alloc(32, sizeof(__m256i) * (2 * (size_t)vectors + 1));
    for (int g = 0; g < groups; g++) {
        const plane_group *G = &group[g];
        if (G->base[0] < 0) continue;
        for (int t = 0; t < G->taps; t++) {
            uint8_t *index = (uint8_t *)&table[2 * (G->offset + t)];
            int32_t *w = (int32_t *)&table[2 * (G->offset + t) + 1];
            memset(index, 0x80, 32);   // 0x80: the shuffle writes zero
            for (int i = 0; i < 8; i++) {
                int x = 8 * g + i;
                w[i] = x < out_width && t < count[x] ? weights[(size_t)x * taps + t] : 0;
                if (x < out_width && t < count[x]) index[4 * i] = (uint8_t)(first[x] + t - G->base[i / 4]);
            }
        }
    }
    const __m256i half = _mm256_set1_epi32(HALF);
    // Eight int32 sums to eight bytes at out (n of them when the group is partial).
#define STORE8(acc, out, n) do {                                                                            \
        __m256i s_ = _mm256_srai_epi32(acc, PRECISION_BITS);                                                \
        __m256i w_ = _mm256_permute4x64_epi64(_mm256_packs_epi32(s_, s_), 0x08);                            \
        __m128i b_ = _mm_packus_epi16(_mm256_castsi256_si128(w_), _mm256_castsi256_si128(w_));              \
        if ((n) == 8) _mm_storel_epi64((__m128i *)(out), b_);                                               \
        else { uint8_t t_[16]; _mm_storeu_si128((__m128i *)t_, b_); memcpy(out, t_, (size_t)(n)); }         \
    } while (0)
    // Four rows at a time share each index and weight load (rows past the last repeat it).
    enum { R = 4 };
    for (int r = 0; r < rows; r += R) {
        int live = rows - r < R ? rows - r : R;
        const uint8_t *row[R];
        uint8_t *out[R];
        for (int k = 0; k < R; k++) {
            row[k] = src + (size_t)(r + (k < live ? k : live - 1)) * src_stride;
            out[k] = dst + (size_t)(r + k) * dst_stride;
        }
        for (int g = 0; g < groups; g++) {
            const plane_group *G = &group[g];
            int n = out_width - 8 * g < 8 ? out_width - 8 * g : 8;
            if (G->base[0] >= 0 && row[R - 1] + G->base[0] + 16 <= src_end && row[R - 1] + G->base[1] + 16 <= src_end) {
                __m256i win[R], acc[R];
                for (int k = 0; k < R; k++) {
                    win[k] = _mm256_loadu2_m128i((const __m128i *)(row[k] + G->base[1]), (const __m128i *)(row[k] + G->base[0]));
                    acc[k] = half;
                }
                const __m256i *T = table + 2 * G->offset;
                for (int t = 0; t < G->taps; t++) {
                    __m256i index = _mm256_load_si256(T + 2 * t), weight = _mm256_load_si256(T + 2 * t + 1);
                    for (int k = 0; k < R; k++)
                        acc[k] = _mm256_add_epi32(acc[k], _mm256_mullo_epi32(_mm256_shuffle_epi8(win[k], index), weight));
                }
                for (int k = 0; k < live; k++) STORE8(acc[k], out[k] + 8 * g, n);
                continue;
            }
            for (int k = 0; k < live; k++) {
                for (int x = 8 * g; x < 8 * g + n; x++) {
                    const uint8_t *p = row[k] + first[x];
                    const int32_t *w = weights + (size_t)x * taps;
                    int c = count[x], t = 0;
                    __m256i sum = _mm256_setzero_si256();
                    for (; t + 8 <= c && p + t + 8 <= src_end; t += 8)
                        sum = _mm256_add_epi32(sum, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p + t))),
                                                                       _mm256_loadu_si256((const __m256i *)(w + t))));
                    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
                    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
                    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
                    int32_t s = HALF + _mm_cvtsi128_si32(s4);
                    for (; t < c; t++) s += p[t] * w[t];
                    out[k][x] = clip8(s);
                }
            }
        }
    }
#undef STORE8
    free(table);
    free(group);
}

int alexnet_kernels_avx2(void) {
    static int cached = -1;
    if (cached < 0) cached = __builtin_cpu_supports("avx2") ? 1 : 0;
    return cached;
}

void alexnet_resample_horizontal(const uint8_t *src, size_t src_stride, const uint8_t *src_end, int rows, uint8_t *dst,
                                 size_t dst_stride, int out_width, const int32_t *first, const int32_t *count,
                                 const int32_t *weights, int taps) {
    if (alexnet_kernels_avx2())
        horizontal_avx2(src, src_stride, src_end, rows, dst, dst_stride, out_width, first, count, weights, taps);
    else
        horizontal_portable(src, src_stride, rows, dst, dst_stride, out_width, first, count, weights, taps);
}

void alexnet_resample_vertical(const uint8_t *src, size_t src_stride, uint8_t *dst, size_t dst_stride, int out_height,
                               int row_bytes, const int32_t *first, const int32_t *count, const int32_t *weights, int taps) {
    if (alexnet_kernels_avx2())
        vertical_avx2(src, src_stride, dst, dst_stride, out_height, row_bytes, first, count, weights, taps);
    else
        vertical_portable(src, src_stride, dst, dst_stride, out_height, row_bytes, first, count, weights, taps);
}

void alexnet_resample_plane_horizontal(const uint8_t *src, size_t src_stride, const uint8_t *src_end, int rows, uint8_t *dst,
                                       size_t dst_stride, int out_width, const int32_t *first, const int32_t *count,
                                       const int32_t *weights, int taps) {
    if (alexnet_kernels_avx2())
        plane_horizontal_avx2(src, src_stride, src_end, rows, dst, dst_stride, out_width, first, count, weights, taps);
    else
        plane_horizontal_portable(src, src_stride, rows, dst, dst_stride, out_width, first, count, weights, taps);
}
