#ifndef ALEXNET_RESAMPLE_H
#define ALEXNET_RESAMPLE_H
#include <stddef.h>
#include <stdint.h>

// The resampler's two passes (Pillow's Resample.c arithmetic: 22-bit fixed-point weights, int32
// sums, round to nearest, clamp to 0..255), with an AVX2 path chosen at run time where the CPU
// has it and a portable path elsewhere; both give identical bytes.

/// Horizontal pass over `rows` rows of interleaved RGB: output pixel x of a row is
/// sum_t weights[x * taps + t] * src[(first[x] + t) * 3 + c] for t < count[x].
/// `src_end` bounds the readable source bytes.
void alexnet_resample_horizontal(const uint8_t *src, size_t src_stride, const uint8_t *src_end, int rows,
                                 uint8_t *dst, size_t dst_stride, int out_width,
                                 const int32_t *first, const int32_t *count, const int32_t *weights, int taps);

/// The horizontal pass over one channel (a plane of a Y'CbCr image): output sample x of a row is
/// sum_t weights[x * taps + t] * src[first[x] + t] for t < count[x].
void alexnet_resample_plane_horizontal(const uint8_t *src, size_t src_stride, const uint8_t *src_end, int rows,
                                       uint8_t *dst, size_t dst_stride, int out_width,
                                       const int32_t *first, const int32_t *count, const int32_t *weights, int taps);

/// Vertical pass (any number of channels: it works byte by byte): output row y is sum_t weights[y * taps + t] * src row (first[y] + t), over
/// `row_bytes` bytes.
void alexnet_resample_vertical(const uint8_t *src, size_t src_stride, uint8_t *dst, size_t dst_stride, int out_height,
                               int row_bytes, const int32_t *first, const int32_t *count, const int32_t *weights, int taps);

/// 1 when the AVX2 paths are in use.
int alexnet_kernels_avx2(void);
#endif
