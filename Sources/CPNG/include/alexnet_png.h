#ifndef ALEXNET_PNG_H
#define ALEXNET_PNG_H
#include <stddef.h>
#include <stdint.h>

// libpng reports errors by longjmp, which Swift cannot catch; these functions keep the
// setjmp on the C side and return a status and a message instead.

/// Decodes a PNG held in memory to 8-bit RGB (row-major, 3 bytes a pixel): 16-bit samples keep
/// their high byte, gray and palette images are expanded, alpha (an alpha channel or a tRNS
/// chunk) is dropped (as Pillow's convert("RGB") does). An image of more than `max_pixels`
/// pixels is refused before its pixels are allocated. On success returns 0 and a malloc'd buffer
/// in *pixels (free() it); on failure returns -1 with a message in `error`.
int alexnet_png_decode_rgb(const uint8_t *data, size_t size, uint64_t max_pixels, uint8_t **pixels, int *width,
                           int *height, char *error, size_t error_size);

/// Encodes 8-bit RGB to PNG in memory (compression level 1..9). On success returns 0 and a
/// malloc'd buffer in *out with its size in *out_size (free() it).
int alexnet_png_encode_rgb(const uint8_t *pixels, int width, int height, int level, uint8_t **out,
                           size_t *out_size, char *error, size_t error_size);

/// The same for 8-bit grayscale (one byte a pixel): what IDX datasets such as Fashion-MNIST hold.
int alexnet_png_encode_gray(const uint8_t *pixels, int width, int height, int level, uint8_t **out,
                            size_t *out_size, char *error, size_t error_size);
#endif
