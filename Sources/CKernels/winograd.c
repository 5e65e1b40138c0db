#include "alexnet_winograd.h"
#include <stdint.h>
#include <string.h>

// libgomp's entry points (oneDNN in Debian threads with GNU OpenMP, and this file is compiled
// without -fopenmp): the transforms run on the same team of threads as the convolutions.
void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags);
int omp_get_thread_num(void);
int omp_get_num_threads(void);

// Eight channels of one pixel: one AVX register, two SSE ones on the portable build. A channel
// block of nChw16c is two of them side by side, a pixel of nhwc C/8 of them.
typedef float v8 __attribute__((vector_size(32)));

#define load(p) ({ v8 v_; memcpy(&v_, (p), sizeof v_); v_; })
#define store(p, v) do { v8 v_ = (v); memcpy((p), &v_, sizeof v_); } while (0)
#define INLINE static inline __attribute__((always_inline))

// Eight bfloat16 values, and eight 32-bit lanes to widen them into and round them from.
typedef uint16_t h8 __attribute__((vector_size(16)));
typedef uint32_t u8 __attribute__((vector_size(32)));

// The activations' eight channels at element `i` of `p`: float32, or bfloat16 (`bf16`) widened
// to float32, which is exact (a bfloat16 is the upper half of a float32).
INLINE v8 load_activation(const void *p, long i, int bf16) {
    if (!bf16) return load((const float *)p + i);
    h8 h;
    memcpy(&h, (const uint16_t *)p + i, sizeof h);
    const u8 wide = __builtin_convertvector(h, u8) << 16;
    v8 v;
    memcpy(&v, &wide, sizeof v);
    return v;
}

// Stores eight float32 values at element `i` of `p`, or with `bf16` as bfloat16 rounded to the
// nearest (ties to even), as oneDNN's conversions do; a NaN stays a (quiet) NaN.
INLINE void store_activation(void *p, long i, v8 v, int bf16) {
    if (!bf16) { store((float *)p + i, v); return; }
    u8 u;
    memcpy(&u, &v, sizeof u);
    const u8 nan = (u8)((u & 0x7fffffffu) > 0x7f800000u);
    const u8 rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    const h8 h = __builtin_convertvector((rounded & ~nan) | (((u >> 16) | 0x40u) & nan), h8);
    memcpy((uint16_t *)p + i, &h, sizeof h);
}
// One float32 value stored at element `i` of `p`, or with `bf16` as bfloat16 rounded as
// store_activation rounds.
INLINE void store_number(void *p, long i, float v, int bf16) {
    if (!bf16) { ((float *)p)[i] = v; return; }
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    ((uint16_t *)p)[i] = (u & 0x7fffffffu) > 0x7f800000u ? (uint16_t)((u >> 16) | 0x40u)
                                                         : (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
#define UNROLL _Pragma("clang loop unroll(full)")
// The helpers that pass v8 by value are always inlined: no call crosses an ABI, so the warning
// that AVX vectors change it without -mavx does not apply.
#pragma clang diagnostic ignored "-Wpsabi"

enum { MAX_ALPHA = 8, MAX_M = 4, MAX_R = 5 };

// An algorithm's three matrices (Lavin and Gray's notation), each the Toom–Cook construction on
// α − 1 points and ∞: 0, 1, −1 for F(2×2, 3×3); 0, 1, −1, 2 for F(3×3, 3×3); 0, 1, −1, 2,
// −2, ½ for F(3×3, 5×5); those and −½ for F(4×4, 5×5) (for F(3×3, 3×3), a fourth point of 2,
// −2 or ½ gives errors within 10 % of each other, about 1e-6 relative in a float32 model
// against float64; for F(4×4, 5×5), ±½ gives 3.7e-6 where ½ and ±3 give 3–6e-5). Aᵀ
// evaluates at the points, G evaluates the kernel there and divides by Π(pᵢ − pⱼ), and Bᵀ is
// what makes Aᵀ[(Gg) ⊙ (Bᵀd)] the correlation of g and d (solved for exactly, in rationals).
// F(2×2, 3×3) is as Lavin and Gray print it, which differs from that construction by the signs
// of matching rows of G and Bᵀ, and of Bᵀ's last row and Aᵀ's last column. The entries are compile-time constants wherever the transforms below read them, so each zero
// is skipped and each ±1 is an addition.
typedef struct {
    int m, r, alpha;
    float at[MAX_M][MAX_ALPHA];      // Aᵀ, m × α
    float g[MAX_ALPHA][MAX_R];       // G, α × r
    float bt[MAX_ALPHA][MAX_ALPHA];  // Bᵀ, α × α
} algorithm;

static const algorithm algorithms[] = {
    [alexnet_winograd_2x2_3x3] = {
        .m = 2, .r = 3, .alpha = 4,
        .at = {{1, 1, 1, 0}, {0, 1, -1, -1}},
        .g = {{1, 0, 0}, {0.5f, 0.5f, 0.5f}, {0.5f, -0.5f, 0.5f}, {0, 0, 1}},
        .bt = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}},
    },
    [alexnet_winograd_3x3_5x5] = {
        .m = 3, .r = 5, .alpha = 7,
        .at = {{1, 1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0.5f, 0}, {0, 1, 1, 4, 4, 0.25f, 1}},
        .g = {{-0.5f, 0, 0, 0, 0},
              {-1.f / 3, -1.f / 3, -1.f / 3, -1.f / 3, -1.f / 3},
              {1.f / 9, -1.f / 9, 1.f / 9, -1.f / 9, 1.f / 9},
              {1.f / 36, 1.f / 18, 1.f / 9, 2.f / 9, 4.f / 9},
              {-1.f / 60, 1.f / 30, -1.f / 15, 2.f / 15, -4.f / 15},
              {32.f / 45, 16.f / 45, 8.f / 45, 4.f / 45, 2.f / 45},
              {0, 0, 0, 0, 1}},
        .bt = {{-2, 4, 2.5f, -5, -0.5f, 1, 0},
               {0, 2, -2, -4.5f, 0.5f, 1, 0},
               {0, -2, 6, -3.5f, -1.5f, 1, 0},
               {0, 1, -1.5f, -2, 1.5f, 1, 0},
               {0, -1, 2.5f, 0, -2.5f, 1, 0},
               {0, 4, 0, -5, 0, 1, 0},
               {0, -2, 4, 2.5f, -5, -0.5f, 1}},
    },
    [alexnet_winograd_3x3_3x3] = {
        .m = 3, .r = 3, .alpha = 5,
        .at = {{1, 1, 1, 1, 0}, {0, 1, -1, 2, 0}, {0, 1, 1, 4, 1}},
        .g = {{0.5f, 0, 0}, {-0.5f, -0.5f, -0.5f}, {-1.f / 6, 1.f / 6, -1.f / 6}, {1.f / 6, 1.f / 3, 2.f / 3}, {0, 0, 1}},
        .bt = {{2, -1, -2, 1, 0}, {0, -2, -1, 1, 0}, {0, 2, -3, 1, 0}, {0, -1, 0, 1, 0}, {0, 2, -1, -2, 1}},
    },
    [alexnet_winograd_4x4_5x5] = {
        .m = 4, .r = 5, .alpha = 8,
        .at = {{1, 1, 1, 1, 1, 1, 1, 0},
               {0, 1, -1, 2, -2, 0.5f, -0.5f, 0},
               {0, 1, 1, 4, 4, 0.25f, 0.25f, 0},
               {0, 1, -1, 8, -8, 0.125f, -0.125f, 1}},
        .g = {{-1, 0, 0, 0, 0},
              {-2.f / 9, -2.f / 9, -2.f / 9, -2.f / 9, -2.f / 9},
              {-2.f / 9, 2.f / 9, -2.f / 9, 2.f / 9, -2.f / 9},
              {1.f / 90, 1.f / 45, 2.f / 45, 4.f / 45, 8.f / 45},
              {1.f / 90, -1.f / 45, 2.f / 45, -4.f / 45, 8.f / 45},
              {32.f / 45, 16.f / 45, 8.f / 45, 4.f / 45, 2.f / 45},
              {32.f / 45, -16.f / 45, 8.f / 45, -4.f / 45, 2.f / 45},
              {0, 0, 0, 0, 1}},
        .bt = {{-1, 0, 5.25f, 0, -5.25f, 0, 1, 0},
               {0, 1, 1, -4.25f, -4.25f, 1, 1, 0},
               {0, -1, 1, 4.25f, -4.25f, -1, 1, 0},
               {0, 0.5f, 0.25f, -2.5f, -1.25f, 2, 1, 0},
               {0, -0.5f, 0.25f, 2.5f, -1.25f, -2, 1, 0},
               {0, 2, 4, -2.5f, -5, 0.5f, 1, 0},
               {0, -2, 4, 2.5f, -5, -0.5f, 1, 0},
               {0, -1, 0, 5.25f, 0, -5.25f, 0, 1}},
    },
};

int alexnet_winograd_tiles(alexnet_winograd_algorithm f, int height, int width) {
    const int m = algorithms[f].m;
    return ((height + m - 1) / m) * ((width + m - 1) / m);
}

// Σᵢ c[i·cs] · x[i·xs] over n terms, skipping the zero coefficients.
INLINE v8 combine(int n, const float *c, int cs, const v8 *x, int xs) {
    v8 sum = {0};
    int started = 0;
    UNROLL for (int i = 0; i < n; i++) {
        const float k = c[i * cs];
        if (k == 0) continue;
        const v8 term = k == 1 ? x[i * xs] : k == -1 ? -x[i * xs] : k * x[i * xs];
        sum = started ? sum + term : term;
        started = 1;
    }
    return sum;
}

// out = L X Lᵀ, for L of rows × cols (its element (p, a) at l[p·rs + a·cs]) and X of cols × cols,
// both row-major: every transform here is one of these, with L one of Bᵀ, Aᵀ, A, G or Gᵀ.
INLINE void sandwich(const float *l, int rows, int cols, int rs, int cs, const v8 *x, v8 *out) {
    v8 t[MAX_ALPHA * MAX_ALPHA];  // X Lᵀ, cols × rows
    UNROLL for (int a = 0; a < cols; a++) UNROLL for (int q = 0; q < rows; q++)
        t[a * rows + q] = combine(cols, l + q * rs, cs, x + a * cols, 1);
    UNROLL for (int p = 0; p < rows; p++) UNROLL for (int q = 0; q < rows; q++)
        out[p * rows + q] = combine(cols, l + p * rs, cs, t + q, rows);
}

// The share [begin, end) of `count` items of this thread of the team.
static void share(long count, long *begin, long *end) {
    long threads = omp_get_num_threads(), t = omp_get_thread_num();
    *begin = count * t / threads;
    *end = count * (t + 1) / threads;
}

// `x` and `out` are float32, except the activations (x of the input and output-gradient
// transforms and of the bias gradient, `out` of the output transform) with `bf16` set.
typedef struct {
    const float *x, *bias;
    float *out;
    int n, c, h, w, relu, backward, k, block, bf16;
    // The weight and bias gradients' type: float32, or bfloat16 (a bf16 run's gradients).
    int out_bf16;
} job;

// What the three tile transforms do to one tile's eight channels: `plane` is the offset of
// those channels' first pixel in the job's tensor (in blocks of `block` channels, so the next
// pixel is `block` floats on), `group` their index among the C/8 groups of eight channels,
// (ty, tx) the tile in the map, and `tile` its row among the `tiles` rows of the [α²][T][·]
// matrices.
typedef void tile_visit(const job *j, const algorithm *f, int block, long plane, long group, int ty, int tx, long tile,
                        long tiles);

// The offset of the first pixel of eight channels (group `group`) of image `n` in a tensor of
// `channels` channels and `pixels` pixels in blocks of `block` channels (8 or 16; C for nhwc).
INLINE long group_plane(long n, long group, long channels, long pixels, int block) {
    return (n * (channels / block) + group / (block / 8)) * pixels * block + group % (block / 8) * 8;
}

// Every tile of the share of the batch's tiles that falls to this thread of the team, and every
// eight channels of each: the channels innermost, so that the [α²][T][·] matrices are read and
// written in whole rows of channels (1 KB at 256 channels) rather than 32 bytes at a time
// (which made the output transforms 1.9–2.5× slower). Inlined with `f`, `block` and `visit`, so
// each transform of each algorithm on each layout compiles to its own loop nest.
INLINE void each_tile(const job *j, const algorithm *f, int block, tile_visit *visit) {
    const int th = (j->h + f->m - 1) / f->m, tw = (j->w + f->m - 1) / f->m;
    const long groups = j->c / 8, tiles = (long)j->n * th * tw, pixels = (long)j->h * j->w;
    long begin, end;
    share(tiles, &begin, &end);
    for (long tile = begin; tile < end; tile++) {
        const long n = tile / (th * tw);
        const int ty = tile / tw % th, tx = tile % tw;
        for (long group = 0; group < groups; group++)
            visit(j, f, block, group_plane(n, group, j->c, pixels, block), group, ty, tx, tile, tiles);
    }
}

// Entry points for GOMP_parallel, one per algorithm: job_2x2_3x3 … and the table `jobs` of them
// (INSTANTIATE); for the jobs that read or write activations, one per algorithm and `variant`:
// job_2x2_3x3_8 … and the table `jobs[algorithm][variant(block)]` of them (INSTANTIATE_BLOCKED):
// blocks of 8 or 16 channels (the block a constant), or any multiple of 8 (read from the job).
#define INSTANTIATE(job)                                                                                   \
    static void job##_2x2_3x3(void *arg) { job(arg, &algorithms[alexnet_winograd_2x2_3x3]); }            \
    static void job##_3x3_5x5(void *arg) { job(arg, &algorithms[alexnet_winograd_3x3_5x5]); }            \
    static void job##_3x3_3x3(void *arg) { job(arg, &algorithms[alexnet_winograd_3x3_3x3]); }            \
    static void job##_4x4_5x5(void *arg) { job(arg, &algorithms[alexnet_winograd_4x4_5x5]); }            \
    static void (*const job##s[])(void *) = {[alexnet_winograd_2x2_3x3] = job##_2x2_3x3,                 \
                                             [alexnet_winograd_3x3_5x5] = job##_3x3_5x5,                 \
                                             [alexnet_winograd_3x3_3x3] = job##_3x3_3x3,                 \
                                             [alexnet_winograd_4x4_5x5] = job##_4x4_5x5};
#define INSTANTIATE_VARIANT(fn, f, name, block, attributes) \
    attributes static void fn##_##f##_##name(void *arg) { fn(arg, &algorithms[alexnet_winograd_##f], block); }
#define RUNTIME_BLOCK (((const job *)arg)->block)
#define INSTANTIATE_VARIANTS(fn, f)                                \
    INSTANTIATE_VARIANT(fn, f, 8, 8, )                             \
    INSTANTIATE_VARIANT(fn, f, 16, 16, )                           \
    INSTANTIATE_VARIANT(fn, f, 16_avx512, 16, AVX512)              \
    INSTANTIATE_VARIANT(fn, f, any, RUNTIME_BLOCK, )               \
    INSTANTIATE_VARIANT(fn, f, any_avx512, RUNTIME_BLOCK, AVX512)
#define VARIANTS(fn, f) \
    [alexnet_winograd_##f] = {fn##_##f##_8, fn##_##f##_16, fn##_##f##_16_avx512, fn##_##f##_any, fn##_##f##_any_avx512}
#define INSTANTIATE_BLOCKED(fn)                                                                               \
    INSTANTIATE_VARIANTS(fn, 2x2_3x3) INSTANTIATE_VARIANTS(fn, 3x3_5x5)                                       \
    INSTANTIATE_VARIANTS(fn, 3x3_3x3) INSTANTIATE_VARIANTS(fn, 4x4_5x5)                                       \
    static void (*const fn##s[][5])(void *) = {VARIANTS(fn, 2x2_3x3), VARIANTS(fn, 3x3_5x5),                  \
                                               VARIANTS(fn, 3x3_3x3), VARIANTS(fn, 4x4_5x5)};

// The same code compiled for AVX-512 (32 vector registers, and the vector operations VEX and
// EVEX encode): the helpers above are inlined into each job, so they take the job's target.
#define AVX512 __attribute__((target("avx512f,avx512vl")))

// Which entry point runs a job on activations in blocks of `block` channels: for nChw8c (what
// oneDNN's AVX2 kernels choose) the portable code with the block a constant; for nChw16c, and
// for any other block (nhwc, which oneDNN's AVX-512 inference kernels choose), the AVX-512 code
// on a CPU with AVX-512, the portable code elsewhere (tests make every layout anywhere).
// __builtin_cpu_supports also checks that the OS saves the wider registers.
static int variant(int block) {
    if (block == 8) return 0;
    const int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
    return (block == 16 ? 1 : 3) + avx512;
}

INLINE void input_tile(const job *j, const algorithm *f, int block, long plane, long group, int ty, int tx, long tile,
                       long tiles) {
    // d: the α×α inputs of the tile, from row and column m·t − (r−1)/2 on (zeros outside).
    const int a = f->alpha, top = f->m * ty - (f->r - 1) / 2, left = f->m * tx - (f->r - 1) / 2;
    v8 d[MAX_ALPHA * MAX_ALPHA], e[MAX_ALPHA * MAX_ALPHA];
    UNROLL for (int r = 0; r < a; r++) UNROLL for (int s = 0; s < a; s++) {
        const int y = top + r, x = left + s;
        d[r * a + s] = (y >= 0 && y < j->h && x >= 0 && x < j->w) ? load_activation(j->x, plane + ((long)y * j->w + x) * block, j->bf16) : (v8){0};
    }
    sandwich(&f->bt[0][0], a, a, MAX_ALPHA, 1, d, e);  // Bᵀ d B
    UNROLL for (int xi = 0; xi < a * a; xi++) store(j->out + ((long)xi * tiles + tile) * j->c + group * 8, e[xi]);
}

INLINE void input_job(void *arg, const algorithm *f, int block) { each_tile(arg, f, block, input_tile); }
INSTANTIATE_BLOCKED(input_job)

void alexnet_winograd_input(alexnet_winograd_algorithm f, const void *x, int bf16, int block, int batch, int channels,
                            int height, int width, float *v) {
    job j = {.x = x, .out = v, .n = batch, .c = channels, .h = height, .w = width, .block = block, .bf16 = bf16};
    GOMP_parallel(input_jobs[f][variant(block)], &j, 0, 0);
}

INLINE void weights_job(void *arg, const algorithm *f) {
    const job *j = arg;
    const int a = f->alpha, r = f->r;
    // Rows and columns of each U[ξ]: (C, K) forward, (K, C) for the input gradient; eight
    // columns at a time, one in each lane.
    const int rows = j->backward ? j->k : j->c, cols = j->backward ? j->c : j->k;
    long begin, end;
    share((long)rows * (cols / 8), &begin, &end);
    for (long item = begin; item < end; item++) {
        const long row = item / (cols / 8), col = item % (cols / 8) * 8;
        v8 g[MAX_R * MAX_R], u[MAX_ALPHA * MAX_ALPHA];
        for (int q = 0; q < 8; q++) {
            const long k = j->backward ? row : col + q, c = j->backward ? col + q : row;
            const float *w = j->x + (k * j->c + c) * r * r;
            UNROLL for (int y = 0; y < r; y++) UNROLL for (int x = 0; x < r; x++)
                g[y * r + x][q] = j->backward ? w[(r - 1 - y) * r + (r - 1 - x)] : w[y * r + x];
        }
        sandwich(&f->g[0][0], a, r, MAX_R, 1, g, u);  // G g Gᵀ
        UNROLL for (int xi = 0; xi < a * a; xi++) store(j->out + ((long)xi * rows + row) * cols + col, u[xi]);
    }
}
INSTANTIATE(weights_job)

void alexnet_winograd_weights(alexnet_winograd_algorithm f, const float *w, int out_channels, int in_channels,
                              int backward, float *u) {
    job j = {.x = w, .out = u, .k = out_channels, .c = in_channels, .backward = backward};
    GOMP_parallel(weights_jobs[f], &j, 0, 0);
}

INLINE void output_tile(const job *j, const algorithm *f, int block, long plane, long group, int ty, int tx, long tile,
                        long tiles) {
    const int a = f->alpha, m = f->m;
    const v8 b = j->bias ? load(j->bias + group * 8) : (v8){0};
    v8 p[MAX_ALPHA * MAX_ALPHA], o[MAX_M * MAX_M];
    UNROLL for (int xi = 0; xi < a * a; xi++) p[xi] = load(j->x + ((long)xi * tiles + tile) * j->c + group * 8);
    sandwich(&f->at[0][0], m, a, MAX_ALPHA, 1, p, o);  // Aᵀ M A
    UNROLL for (int r = 0; r < m; r++) UNROLL for (int s = 0; s < m; s++) {
        const int y = m * ty + r, x = m * tx + s;
        if (y >= j->h || x >= j->w) continue;  // the last tiles' overhang where m does not divide the size
        v8 out = o[r * m + s] + b;
        if (j->relu) for (int q = 0; q < 8; q++) out[q] = out[q] > 0 ? out[q] : 0;
        store_activation(j->out, plane + ((long)y * j->w + x) * block, out, j->bf16);
    }
}

INLINE void output_job(void *arg, const algorithm *f, int block) { each_tile(arg, f, block, output_tile); }
INSTANTIATE_BLOCKED(output_job)

void alexnet_winograd_output(alexnet_winograd_algorithm f, const float *m, const float *bias, int relu, int block,
                             int batch, int channels, int height, int width, void *y, int bf16) {
    job j = {.x = m, .bias = bias, .relu = relu, .out = y, .n = batch, .c = channels, .h = height, .w = width,
             .block = block, .bf16 = bf16};
    GOMP_parallel(output_jobs[f][variant(block)], &j, 0, 0);
}

INLINE void output_gradient_tile(const job *j, const algorithm *f, int block, long plane, long group, int ty, int tx,
                                 long tile, long tiles) {
    const int a = f->alpha, m = f->m;
    v8 g[MAX_M * MAX_M], e[MAX_ALPHA * MAX_ALPHA];
    UNROLL for (int r = 0; r < m; r++) UNROLL for (int s = 0; s < m; s++) {
        const int y = m * ty + r, x = m * tx + s;
        g[r * m + s] = (y < j->h && x < j->w) ? load_activation(j->x, plane + ((long)y * j->w + x) * block, j->bf16) : (v8){0};
    }
    sandwich(&f->at[0][0], a, m, 1, MAX_ALPHA, g, e);  // A ∂y Aᵀ: L = A, read from Aᵀ transposed
    UNROLL for (int xi = 0; xi < a * a; xi++) store(j->out + ((long)xi * tiles + tile) * j->c + group * 8, e[xi]);
}

INLINE void output_gradient_job(void *arg, const algorithm *f, int block) { each_tile(arg, f, block, output_gradient_tile); }
INSTANTIATE_BLOCKED(output_gradient_job)

void alexnet_winograd_output_gradient(alexnet_winograd_algorithm f, const void *dy, int bf16, int block, int batch,
                                      int channels, int height, int width, float *w) {
    job j = {.x = dy, .out = w, .n = batch, .c = channels, .h = height, .w = width, .block = block, .bf16 = bf16};
    GOMP_parallel(output_gradient_jobs[f][variant(block)], &j, 0, 0);
}

INLINE void weight_gradient_job(void *arg, const algorithm *f) {
    const job *j = arg;
    const int a = f->alpha, r = f->r;
    long begin, end;
    share((long)j->c * (j->k / 8), &begin, &end);
    for (long item = begin; item < end; item++) {
        // One input channel and eight output channels, one in each lane.
        const long c = item / (j->k / 8), k = item % (j->k / 8) * 8;
        v8 u[MAX_ALPHA * MAX_ALPHA], g[MAX_R * MAX_R];
        UNROLL for (int xi = 0; xi < a * a; xi++) u[xi] = load(j->x + ((long)xi * j->c + c) * j->k + k);
        sandwich(&f->g[0][0], r, a, 1, MAX_R, u, g);  // Gᵀ ∂U G: L = Gᵀ, read from G transposed
        for (int q = 0; q < 8; q++) {
            const long dw = ((k + q) * j->c + c) * r * r;
            UNROLL for (int i = 0; i < r * r; i++) store_number(j->out, dw + i, g[i][q], j->out_bf16);
        }
    }
}
INSTANTIATE(weight_gradient_job)

void alexnet_winograd_weight_gradient(alexnet_winograd_algorithm f, const float *du, int out_channels,
                                      int in_channels, void *dw, int dw_bf16) {
    job j = {.x = du, .out = dw, .k = out_channels, .c = in_channels, .out_bf16 = dw_bf16};
    GOMP_parallel(weight_gradient_jobs[f], &j, 0, 0);
}

static void bias_gradient_job(void *arg) {
    const job *j = arg;
    const long groups = j->c / 8, pixels = (long)j->h * j->w;
    long begin, end;
    share(groups, &begin, &end);
    for (long group = begin; group < end; group++) {
        // Eight channels at a time: each image's map summed in float, the batch in double.
        double sum[8] = {0};
        for (long n = 0; n < j->n; n++) {
            const long plane = group_plane(n, group, j->c, pixels, j->block);
            v8 partial = {0};
            for (long p = 0; p < pixels; p++) partial += load_activation(j->x, plane + p * j->block, j->bf16);
            for (int q = 0; q < 8; q++) sum[q] += partial[q];
        }
        for (int q = 0; q < 8; q++) store_number(j->out, group * 8 + q, (float)sum[q], j->out_bf16);
    }
}

void alexnet_winograd_bias_gradient(const void *dy, int bf16, int block, int batch, int channels, int height, int width,
                                    void *db, int db_bf16) {
    job j = {.x = dy, .out = db, .n = batch, .c = channels, .h = height, .w = width, .block = block, .bf16 = bf16,
             .out_bf16 = db_bf16};
    GOMP_parallel(bias_gradient_job, &j, 0, 0);
}
