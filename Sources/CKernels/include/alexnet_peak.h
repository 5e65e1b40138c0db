#ifndef ALEXNET_PEAK_H
#define ALEXNET_PEAK_H
#include <stdint.h>

// The machine's floating-point peak for `alexnet bench`, which reports throughput as a fraction of
// the measured peak (docs/PERFORMANCE.md, Method): independent chains of fused multiply-adds on the
// widest vectors the CPU has, chosen at run time (AVX-512F, AVX2+FMA, else a portable loop).

/// Which path `alexnet_fma_peak_run` takes on this CPU: 3 for AVX-512F, 2 for AVX2+FMA, 1 for
/// the portable loop (separate multiplies and adds, which the compiler vectorises as it can).
int alexnet_fma_peak_path(void);

/// Runs `iterations` rounds of the kernel on the calling thread and returns the single-precision
/// floating-point operations performed (an FMA counts as two). `path` 0 means the best available;
/// a path the CPU lacks falls back to the best it has.
double alexnet_fma_peak_run(int64_t iterations, int path);
#endif
