#include "alexnet_peak.h"

#include <immintrin.h>

// Each kernel keeps more independent accumulators than FMA latency × FMA units (4-5 cycles × 2
// units on current x86 cores), so the units never wait for a result; multiplier and addend
// keep every value near 1, with no denormals or overflow however long it runs. The constants
// are read from volatile variables and the results summed into a volatile sink, so that the
// compiler can neither evaluate the loop at compile time nor drop it.

static volatile float sink;
static volatile float start = 1.0f, multiplier = 0.999999f, addend = 1e-6f;

#define PORTABLE_LANES 32

static double run_portable(int64_t iterations) {
    float acc[PORTABLE_LANES];
    for (int i = 0; i < PORTABLE_LANES; i++) acc[i] = start + (float)i * 1e-3f;
    const float mul = multiplier, add = addend;
    for (int64_t n = 0; n < iterations; n++)
        for (int i = 0; i < PORTABLE_LANES; i++) acc[i] = acc[i] * mul + add;
    float s = 0;
    for (int i = 0; i < PORTABLE_LANES; i++) s += acc[i];
    sink = s;
    return 2.0 * PORTABLE_LANES * (double)iterations;
}

#define AVX2_CHAINS 12

__attribute__((target("avx2,fma"))) static double run_avx2(int64_t iterations) {
    __m256 acc[AVX2_CHAINS];
    for (int i = 0; i < AVX2_CHAINS; i++) acc[i] = _mm256_set1_ps(start + (float)i * 1e-3f);
    const __m256 mul = _mm256_set1_ps(multiplier), add = _mm256_set1_ps(addend);
    for (int64_t n = 0; n < iterations; n++) {
        // Written out, so that every chain stays in its own register.
        acc[0] = _mm256_fmadd_ps(acc[0], mul, add);
        acc[1] = _mm256_fmadd_ps(acc[1], mul, add);
        acc[2] = _mm256_fmadd_ps(acc[2], mul, add);
        acc[3] = _mm256_fmadd_ps(acc[3], mul, add);
        acc[4] = _mm256_fmadd_ps(acc[4], mul, add);
        acc[5] = _mm256_fmadd_ps(acc[5], mul, add);
        acc[6] = _mm256_fmadd_ps(acc[6], mul, add);
        acc[7] = _mm256_fmadd_ps(acc[7], mul, add);
        acc[8] = _mm256_fmadd_ps(acc[8], mul, add);
        acc[9] = _mm256_fmadd_ps(acc[9], mul, add);
        acc[10] = _mm256_fmadd_ps(acc[10], mul, add);
        acc[11] = _mm256_fmadd_ps(acc[11], mul, add);
    }
    __m256 s = acc[0];
    for (int i = 1; i < AVX2_CHAINS; i++) s = _mm256_add_ps(s, acc[i]);
    float lanes[8];
    _mm256_storeu_ps(lanes, s);
    sink = lanes[0] + lanes[7];
    return 2.0 * 8 * AVX2_CHAINS * (double)iterations;
}

#define AVX512_CHAINS 16

__attribute__((target("avx512f"))) static double run_avx512(int64_t iterations) {
    __m512 acc[AVX512_CHAINS];
    for (int i = 0; i < AVX512_CHAINS; i++) acc[i] = _mm512_set1_ps(start + (float)i * 1e-3f);
    const __m512 mul = _mm512_set1_ps(multiplier), add = _mm512_set1_ps(addend);
    for (int64_t n = 0; n < iterations; n++) {
        acc[0] = _mm512_fmadd_ps(acc[0], mul, add);
        acc[1] = _mm512_fmadd_ps(acc[1], mul, add);
        acc[2] = _mm512_fmadd_ps(acc[2], mul, add);
        acc[3] = _mm512_fmadd_ps(acc[3], mul, add);
        acc[4] = _mm512_fmadd_ps(acc[4], mul, add);
        acc[5] = _mm512_fmadd_ps(acc[5], mul, add);
        acc[6] = _mm512_fmadd_ps(acc[6], mul, add);
        acc[7] = _mm512_fmadd_ps(acc[7], mul, add);
        acc[8] = _mm512_fmadd_ps(acc[8], mul, add);
        acc[9] = _mm512_fmadd_ps(acc[9], mul, add);
        acc[10] = _mm512_fmadd_ps(acc[10], mul, add);
        acc[11] = _mm512_fmadd_ps(acc[11], mul, add);
        acc[12] = _mm512_fmadd_ps(acc[12], mul, add);
        acc[13] = _mm512_fmadd_ps(acc[13], mul, add);
        acc[14] = _mm512_fmadd_ps(acc[14], mul, add);
        acc[15] = _mm512_fmadd_ps(acc[15], mul, add);
    }
    __m512 s = acc[0];
    for (int i = 1; i < AVX512_CHAINS; i++) s = _mm512_add_ps(s, acc[i]);
    sink = _mm512_reduce_add_ps(s);
    return 2.0 * 16 * AVX512_CHAINS * (double)iterations;
}

int alexnet_fma_peak_path(void) {
    static int cached = 0;
    if (cached == 0) {
        // __builtin_cpu_supports also checks that the OS saves the wider registers (XCR0).
        if (__builtin_cpu_supports("avx512f")) cached = 3;
        else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) cached = 2;
        else cached = 1;
    }
    return cached;
}

double alexnet_fma_peak_run(int64_t iterations, int path) {
    int best = alexnet_fma_peak_path();
    if (path <= 0 || path > best) path = best;
    if (iterations < 0) iterations = 0;
    switch (path) {
    case 3: return run_avx512(iterations);
    case 2: return run_avx2(iterations);
    default: return run_portable(iterations);
    }
}
