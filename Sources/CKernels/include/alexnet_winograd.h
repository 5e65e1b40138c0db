#ifndef ALEXNET_WINOGRAD_H
#define ALEXNET_WINOGRAD_H

// Winograd's minimal filtering F(2×2, 3×3) (Lavin and Gray, "Fast Algorithms for Convolutional
// Neural Networks", 2015) for 3×3 convolutions at stride 1 with padding 1: conv3, conv4, conv5.
// Each 2×2 block of outputs ("tile") comes from a 4×4 block of inputs with 16 multiplies per
// input channel instead of 36; the 16 multiplies of all tiles and channels are 16 matrix
// products, which the caller runs (a GEMM), between the three transforms here:
//
//   U[ξ] = (G g Gᵀ)[ξ]       weights,  [16][C][K]
//   V[ξ] = (Bᵀ d B)[ξ]       inputs,   [16][T][C]   (T = N × tiles, tile-major)
//   M[ξ] = V[ξ] · U[ξ]       the caller's 16 GEMMs, [16][T][K]
//   y    = Aᵀ M A (+ bias)   outputs
//
// Activations are in the channel-blocked layout nChw8c ([N][C/8][H][W][8], what oneDNN's AVX2
// convolutions choose), so C and K must be multiples of 8. The transforms run on the calling
// thread's OpenMP team (oneDNN's threads: one thread budget).

/// Tiles per image: ceil(H/2) × ceil(W/2).
int alexnet_winograd_tiles(int height, int width);

/// U from weights `w` in PyTorch's layout [K][C][3][3]. With `backward` set, U for the input
/// gradient instead: the weights with K and C swapped and each 3×3 kernel turned by 180°, so
/// that ∂x is the same transform pipeline run on ∂y; U is then [16][K][C].
void alexnet_winograd_weights(const float *w, int out_channels, int in_channels, int backward, float *u);

/// V from x (nChw8c, N×C×H×W), zero-padded by 1 on every side.
void alexnet_winograd_input(const float *x, int batch, int channels, int height, int width, float *v);

/// y (nChw8c, N×K×H×W) from M; adds `bias` (K floats) unless it is NULL, then applies ReLU if
/// `relu` is set.
void alexnet_winograd_output(const float *m, const float *bias, int relu, int batch, int channels, int height, int width,
                             float *y);
/// For the weight gradient (the forward pass is bilinear in U and V, so ∂U = Σ over tiles of
/// V ⊙ A ∂y Aᵀ, and ∂g = Gᵀ ∂U G): A ∂y Aᵀ from ∂y (nChw8c, N×K×H×W), [16][T][K]; the outputs
/// past the maps' edges count as zero.
void alexnet_winograd_output_gradient(const float *dy, int batch, int channels, int height, int width, float *w);

/// ∂g = Gᵀ ∂U G into weight gradients in PyTorch's layout [K][C][3][3], from ∂U [16][C][K].
void alexnet_winograd_weight_gradient(const float *du, int out_channels, int in_channels, float *dw);

/// The bias gradient: each channel's sum of ∂y (nChw8c, N×K×H×W) over the batch and the map.
void alexnet_winograd_bias_gradient(const float *dy, int batch, int channels, int height, int width, float *db);
#endif
