#ifndef ALEXNET_WINOGRAD_H
#define ALEXNET_WINOGRAD_H

// Winograd's minimal filtering F(m×m, r×r) (Lavin and Gray, "Fast Algorithms for Convolutional
// Neural Networks", 2015) for r×r convolutions at stride 1 with padding (r−1)/2, whose output
// has the input's size. Each m×m block of outputs ("tile") comes from an α×α block of inputs,
// α = m + r − 1, with α² multiplies per input channel instead of m²r²; the multiplies of all
// tiles and channels are α² matrix products, which the caller runs (a GEMM), between the three
// transforms here:
//
//   U[ξ] = (G g Gᵀ)[ξ]       weights,  [α²][C][K]
//   V[ξ] = (Bᵀ d B)[ξ]       inputs,   [α²][T][C]   (T = N × tiles, tile-major)
//   M[ξ] = V[ξ] · U[ξ]       the caller's α² GEMMs, [α²][T][K]
//   y    = Aᵀ M A (+ bias)   outputs
//
// Activations are in a channel-blocked layout [N][C/block][H][W][block]: nChw8c or nChw16c
// (`block` 8 or 16, what oneDNN's AVX2 and AVX-512 convolutions choose for training), or nhwc
// (`block` C, what its AVX-512 ones choose for inference); `block` must be a multiple of 8 that
// divides the channels. Activations are float32, or bfloat16 where `bf16` is set: read widened
// to float32, written rounded to the nearest bfloat16; the transforms and U, V, M are float32. Images are outermost in each, so a caller can transform a batch a
// few images at a time by offsetting the pointers. The transforms run on the calling thread's
// OpenMP team (oneDNN's threads: one thread budget).

/// The algorithms: F(2×2, 3×3) (α = 4: 16 products for 2×2 outputs of a 3×3 kernel, 2.25×
/// fewer multiplies than direct), F(3×3, 3×3) (α = 5: 25 products for 3×3 outputs, 3.24×
/// fewer), F(3×3, 5×5) (α = 7: 49 products for 3×3 outputs of a 5×5 kernel, 4.6× fewer) and
/// F(4×4, 5×5) (α = 8: 64 products for 4×4 outputs, 6.25× fewer).
typedef enum {
    alexnet_winograd_2x2_3x3 = 0,
    alexnet_winograd_3x3_5x5 = 1,
    alexnet_winograd_3x3_3x3 = 2,
    alexnet_winograd_4x4_5x5 = 3,
} alexnet_winograd_algorithm;

/// Tiles per image: ceil(H/m) × ceil(W/m).
int alexnet_winograd_tiles(alexnet_winograd_algorithm f, int height, int width);

/// U from weights `w` in PyTorch's layout [K][C][r][r]. With `backward` set, U for the input
/// gradient instead: the weights with K and C swapped and each kernel turned by 180°, so that
/// ∂x is the same transform pipeline run on ∂y; U is then [α²][K][C].
void alexnet_winograd_weights(alexnet_winograd_algorithm f, const float *w, int out_channels, int in_channels,
                              int backward, float *u);

/// V from x (N×C×H×W in blocks of `block` channels), zero-padded by (r−1)/2 on every side.
void alexnet_winograd_input(alexnet_winograd_algorithm f, const void *x, int bf16, int block, int batch, int channels,
                            int height, int width, float *v);

/// y (N×K×H×W in blocks of `block` channels) from M; adds `bias` (K floats) unless it is NULL,
/// then applies ReLU if `relu` is set.
void alexnet_winograd_output(alexnet_winograd_algorithm f, const float *m, const float *bias, int relu, int block,
                             int batch, int channels, int height, int width, void *y, int bf16);

/// For the weight gradient (the forward pass is bilinear in U and V, so ∂U = Σ over tiles of
/// V ⊙ A ∂y Aᵀ, and ∂g = Gᵀ ∂U G): A ∂y Aᵀ from ∂y (N×K×H×W in blocks of `block` channels),
/// [α²][T][K]; the outputs past the maps' edges count as zero.
void alexnet_winograd_output_gradient(alexnet_winograd_algorithm f, const void *dy, int bf16, int block, int batch,
                                      int channels, int height, int width, float *w);

/// ∂g = Gᵀ ∂U G into weight gradients in PyTorch's layout [K][C][r][r], from ∂U [α²][C][K]:
/// float32, or with `dw_bf16` bfloat16 rounded to nearest even.
void alexnet_winograd_weight_gradient(alexnet_winograd_algorithm f, const float *du, int out_channels,
                                      int in_channels, void *dw, int dw_bf16);

/// The bias gradient: each channel's sum of ∂y (N×K×H×W in blocks of `block` channels) over the
/// batch and the map (float32, or with `db_bf16` bfloat16).
void alexnet_winograd_bias_gradient(const void *dy, int bf16, int block, int batch, int channels, int height, int width,
                                    void *db, int db_bf16);
#endif
