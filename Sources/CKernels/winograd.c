#include "alexnet_winograd.h"
#include <string.h>

// libgomp's entry points (oneDNN in Debian threads with GNU OpenMP, and this file is compiled
// without -fopenmp): the transforms run on the same team of threads as the convolutions.
void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags);
int omp_get_thread_num(void);
int omp_get_num_threads(void);

// Eight channels of one pixel: one AVX register, two SSE ones on the portable build.
typedef float v8 __attribute__((vector_size(32)));

#define load(p) ({ v8 v_; memcpy(&v_, (p), sizeof v_); v_; })
#define store(p, v) do { v8 v_ = (v); memcpy((p), &v_, sizeof v_); } while (0)

int alexnet_winograd_tiles(int height, int width) { return ((height + 1) / 2) * ((width + 1) / 2); }

// The share [begin, end) of `count` items of this thread of the team.
static void share(long count, long *begin, long *end) {
    long threads = omp_get_num_threads(), t = omp_get_thread_num();
    *begin = count * t / threads;
    *end = count * (t + 1) / threads;
}

typedef struct {
    const float *x, *bias;
    float *out;
    int n, c, h, w, relu, backward, k;
} job;

// What the three tile transforms do to one tile: `plane` is the offset of the tile's (image,
// channel block) H×W×8 floats in the job's nChw8c tensor, `block` that channel block, (ty, tx)
// the tile in the map, and `tile` its row among the `tiles` rows of the [16][T][·] matrices.
typedef void tile_visit(const job *j, long plane, long block, int ty, int tx, long tile, long tiles);

// Every tile of the (image, channel block) items that fall to this thread of the team. Inlined
// with `visit`, so each transform compiles to its own loop nest.
static inline __attribute__((always_inline)) void each_tile(const job *j, tile_visit *visit) {
    const int th = (j->h + 1) / 2, tw = (j->w + 1) / 2;
    const long blocks = j->c / 8, tiles = (long)j->n * th * tw;
    long begin, end;
    share((long)j->n * blocks, &begin, &end);
    for (long item = begin; item < end; item++) {
        const long n = item / blocks, plane = item * j->h * j->w * 8;
        for (int ty = 0; ty < th; ty++) for (int tx = 0; tx < tw; tx++)
            visit(j, plane, item % blocks, ty, tx, (n * th + ty) * tw + tx, tiles);
    }
}

static inline __attribute__((always_inline)) void input_tile(const job *j, long plane, long block, int ty, int tx,
                                                             long tile, long tiles) {
    // d: the 4×4 inputs of the tile, rows and columns 2t−1 … 2t+2 (zeros outside).
    v8 d[4][4];
    for (int r = 0; r < 4; r++) for (int s = 0; s < 4; s++) {
        const int y = 2 * ty - 1 + r, x = 2 * tx - 1 + s;
        d[r][s] = (y >= 0 && y < j->h && x >= 0 && x < j->w) ? load(j->x + plane + ((long)y * j->w + x) * 8) : (v8){0};
    }
    // Bᵀ d B with Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1].
    v8 t[4][4];
    for (int s = 0; s < 4; s++) {
        t[0][s] = d[0][s] - d[2][s];
        t[1][s] = d[1][s] + d[2][s];
        t[2][s] = d[2][s] - d[1][s];
        t[3][s] = d[1][s] - d[3][s];
    }
    for (int r = 0; r < 4; r++) {
        const v8 e[4] = {t[r][0] - t[r][2], t[r][1] + t[r][2], t[r][2] - t[r][1], t[r][1] - t[r][3]};
        for (int s = 0; s < 4; s++) store(j->out + ((long)(r * 4 + s) * tiles + tile) * j->c + block * 8, e[s]);
    }
}

static void input_job(void *arg) { each_tile(arg, input_tile); }

void alexnet_winograd_input(const float *x, int batch, int channels, int height, int width, float *v) {
    job j = {.x = x, .out = v, .n = batch, .c = channels, .h = height, .w = width};
    GOMP_parallel(input_job, &j, 0, 0);
}

static void weights_job(void *arg) {
    const job *j = arg;
    // Rows and columns of each U[ξ]: (C, K) forward, (K, C) for the input gradient.
    const int rows = j->backward ? j->k : j->c, cols = j->backward ? j->c : j->k;
    long begin, end;
    share(rows, &begin, &end);
    for (long row = begin; row < end; row++) for (int col = 0; col < cols; col++) {
        const long k = j->backward ? row : col, c = j->backward ? col : row;
        const float *w = j->x + (k * j->c + c) * 9;
        float g[3][3];
        for (int u = 0; u < 3; u++) for (int v = 0; v < 3; v++) g[u][v] = j->backward ? w[(2 - u) * 3 + (2 - v)] : w[u * 3 + v];
        // G g Gᵀ with G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1].
        float t[4][3];
        for (int v = 0; v < 3; v++) {
            t[0][v] = g[0][v];
            t[1][v] = 0.5f * (g[0][v] + g[1][v] + g[2][v]);
            t[2][v] = 0.5f * (g[0][v] - g[1][v] + g[2][v]);
            t[3][v] = g[2][v];
        }
        for (int r = 0; r < 4; r++) {
            const float e[4] = {t[r][0], 0.5f * (t[r][0] + t[r][1] + t[r][2]), 0.5f * (t[r][0] - t[r][1] + t[r][2]), t[r][2]};
            for (int s = 0; s < 4; s++) j->out[((long)(r * 4 + s) * rows + row) * cols + col] = e[s];
        }
    }
}

void alexnet_winograd_weights(const float *w, int out_channels, int in_channels, int backward, float *u) {
    job j = {.x = w, .out = u, .k = out_channels, .c = in_channels, .backward = backward};
    GOMP_parallel(weights_job, &j, 0, 0);
}

static inline __attribute__((always_inline)) void output_tile(const job *j, long plane, long block, int ty, int tx,
                                                              long tile, long tiles) {
    const v8 b = j->bias ? load(j->bias + block * 8) : (v8){0};
    v8 m[4][4];
    for (int r = 0; r < 4; r++) for (int s = 0; s < 4; s++) m[r][s] = load(j->x + ((long)(r * 4 + s) * tiles + tile) * j->c + block * 8);
    // Aᵀ m A with Aᵀ = [1 1 1 0; 0 1 −1 −1].
    v8 t[2][4];
    for (int s = 0; s < 4; s++) {
        t[0][s] = m[0][s] + m[1][s] + m[2][s];
        t[1][s] = m[1][s] - m[2][s] - m[3][s];
    }
    for (int r = 0; r < 2; r++) {
        const v8 e[2] = {t[r][0] + t[r][1] + t[r][2] + b, t[r][1] - t[r][2] - t[r][3] + b};
        for (int s = 0; s < 2; s++) {
            const int y = 2 * ty + r, x = 2 * tx + s;
            if (y >= j->h || x >= j->w) continue;  // the last tile's overhang on odd sizes
            v8 out = e[s];
            if (j->relu) for (int q = 0; q < 8; q++) out[q] = out[q] > 0 ? out[q] : 0;
            store(j->out + plane + ((long)y * j->w + x) * 8, out);
        }
    }
}

static void output_job(void *arg) { each_tile(arg, output_tile); }

void alexnet_winograd_output(const float *m, const float *bias, int relu, int batch, int channels, int height, int width,
                             float *y) {
    job j = {.x = m, .bias = bias, .relu = relu, .out = y, .n = batch, .c = channels, .h = height, .w = width};
    GOMP_parallel(output_job, &j, 0, 0);
}

static inline __attribute__((always_inline)) void output_gradient_tile(const job *j, long plane, long block, int ty,
                                                                       int tx, long tile, long tiles) {
    v8 g[2][2];
    for (int r = 0; r < 2; r++) for (int s = 0; s < 2; s++) {
        const int y = 2 * ty + r, x = 2 * tx + s;
        g[r][s] = (y < j->h && x < j->w) ? load(j->x + plane + ((long)y * j->w + x) * 8) : (v8){0};
    }
    // A g Aᵀ with A = [1 0; 1 1; 1 −1; 0 −1] (the output transform's transpose).
    const v8 t[4][2] = {{g[0][0], g[0][1]}, {g[0][0] + g[1][0], g[0][1] + g[1][1]},
                        {g[0][0] - g[1][0], g[0][1] - g[1][1]}, {-g[1][0], -g[1][1]}};
    for (int r = 0; r < 4; r++) {
        const v8 e[4] = {t[r][0], t[r][0] + t[r][1], t[r][0] - t[r][1], -t[r][1]};
        for (int s = 0; s < 4; s++) store(j->out + ((long)(r * 4 + s) * tiles + tile) * j->c + block * 8, e[s]);
    }
}

static void output_gradient_job(void *arg) { each_tile(arg, output_gradient_tile); }

void alexnet_winograd_output_gradient(const float *dy, int batch, int channels, int height, int width, float *w) {
    job j = {.x = dy, .out = w, .n = batch, .c = channels, .h = height, .w = width};
    GOMP_parallel(output_gradient_job, &j, 0, 0);
}

static void weight_gradient_job(void *arg) {
    const job *j = arg;
    long begin, end;
    share(j->c, &begin, &end);
    for (long c = begin; c < end; c++) for (long k = 0; k < j->k; k++) {
        float u[4][4];
        for (int r = 0; r < 4; r++) for (int s = 0; s < 4; s++) u[r][s] = j->x[((long)(r * 4 + s) * j->c + c) * j->k + k];
        // Gᵀ u G with Gᵀ = [1 ½ ½ 0; 0 ½ −½ 0; 0 ½ ½ 1].
        float t[3][4];
        for (int s = 0; s < 4; s++) {
            t[0][s] = u[0][s] + 0.5f * (u[1][s] + u[2][s]);
            t[1][s] = 0.5f * (u[1][s] - u[2][s]);
            t[2][s] = 0.5f * (u[1][s] + u[2][s]) + u[3][s];
        }
        float *dw = j->out + (k * j->c + c) * 9;
        for (int r = 0; r < 3; r++) {
            dw[r * 3 + 0] = t[r][0] + 0.5f * (t[r][1] + t[r][2]);
            dw[r * 3 + 1] = 0.5f * (t[r][1] - t[r][2]);
            dw[r * 3 + 2] = 0.5f * (t[r][1] + t[r][2]) + t[r][3];
        }
    }
}

void alexnet_winograd_weight_gradient(const float *du, int out_channels, int in_channels, float *dw) {
    job j = {.x = du, .out = dw, .k = out_channels, .c = in_channels};
    GOMP_parallel(weight_gradient_job, &j, 0, 0);
}

static void bias_gradient_job(void *arg) {
    const job *j = arg;
    const long blocks = j->c / 8, pixels = (long)j->h * j->w;
    long begin, end;
    share(blocks, &begin, &end);
    for (long kb = begin; kb < end; kb++) {
        // Eight channels at a time: each image's map summed in float, the batch in double.
        double sum[8] = {0};
        for (long n = 0; n < j->n; n++) {
            const float *plane = j->x + (n * blocks + kb) * pixels * 8;
            v8 partial = {0};
            for (long p = 0; p < pixels; p++) partial += load(plane + p * 8);
            for (int q = 0; q < 8; q++) sum[q] += partial[q];
        }
        for (int q = 0; q < 8; q++) j->out[kb * 8 + q] = (float)sum[q];
    }
}

void alexnet_winograd_bias_gradient(const float *dy, int batch, int channels, int height, int width, float *db) {
    job j = {.x = dy, .out = db, .n = batch, .c = channels, .h = height, .w = width};
    GOMP_parallel(bias_gradient_job, &j, 0, 0);
}
