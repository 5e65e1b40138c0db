#include "alexnet_png.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct reader {
    const uint8_t *data;
    size_t size, offset;
};

struct failure {
    char *message;
    size_t size;
};

static void on_error(png_structp png, png_const_charp message) {
    struct failure *f = (struct failure *)png_get_error_ptr(png);
    if (f && f->message && f->size) snprintf(f->message, f->size, "%s", message);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp message) {
    (void)png;
    (void)message;  // Benign (e.g. an unknown chunk or a bad sRGB profile): decode anyway, as Pillow does.
}

static void read_bytes(png_structp png, png_bytep out, png_size_t length) {
    struct reader *r = (struct reader *)png_get_io_ptr(png);
    if (r->size - r->offset < length) png_error(png, "file is truncated");
    memcpy(out, r->data + r->offset, length);
    r->offset += length;
}

int alexnet_png_decode_rgb(const uint8_t *data, size_t size, uint64_t max_pixels, uint8_t **pixels, int *width,
                           int *height, char *error, size_t error_size) {
    struct failure failure = {error, error_size};
    struct reader reader = {data, size, 0};
    uint8_t *volatile buffer = NULL;
    png_bytep *volatile rows = NULL;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &failure, on_error, on_warning);
    if (!png) { snprintf(error, error_size, "out of memory"); return -1; }
    png_infop info = png_create_info_struct(png);
    if (!info || setjmp(png_jmpbuf(png))) {
        if (!info) snprintf(error, error_size, "out of memory");
        png_destroy_read_struct(&png, info ? &info : NULL, NULL);
        free(buffer);
        free(rows);
        return -1;
    }
    png_set_read_fn(png, &reader, read_bytes);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    // The pixel cap is checked on IHDR's dimensions, before any pixel buffer exists: a few
    // megabytes of compressed zeros can claim 40000x40000 (a decompression bomb).
    if (w == 0 || h == 0) png_error(png, "image has no pixels");
    if ((uint64_t)w * h > max_pixels) {
        char message[160];
        snprintf(message, sizeof message, "%ux%u = %llu pixels, more than the %llu allowed (decompression bomb)",
                 (unsigned)w, (unsigned)h, (unsigned long long)((uint64_t)w * h), (unsigned long long)max_pixels);
        png_error(png, message);
    }
    int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    // 16-bit samples keep their high byte (libpng's and OpenCV's 8-bit scaling; Pillow 13 clips
    // its 16-bit gray mode instead; docs/DESIGN.md, Data).
    if (depth == 16) png_set_strip_16(png);
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    // A tRNS chunk is alpha too: png_set_palette_to_rgb expands it to a fourth channel, which
    // is dropped like a real alpha channel (Pillow's convert("RGB") keeps the palette colours).
    if ((color & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS)) png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * 3) png_error(png, "unexpected row layout after conversion to RGB");
    buffer = malloc((size_t)w * h * 3);
    rows = malloc(sizeof(png_bytep) * h);
    if (!buffer || !rows) png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < h; y++) rows[y] = buffer + (size_t)y * w * 3;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    *pixels = buffer;
    *width = (int)w;
    *height = (int)h;
    return 0;
}

struct writer {
    uint8_t *data;
    size_t size, capacity;
};

static void write_bytes(png_structp png, png_bytep in, png_size_t length) {
    struct writer *w = (struct writer *)png_get_io_ptr(png);
    if (w->size + length > w->capacity) {
        size_t capacity = (w->capacity ? w->capacity * 2 : 65536);
        while (capacity < w->size + length) capacity *= 2;
        uint8_t *grown = realloc(w->data, capacity);
        if (!grown) png_error(png, "out of memory");
        w->data = grown;
        w->capacity = capacity;
    }
    memcpy(w->data + w->size, in, length);
    w->size += length;
}

static void flush_nothing(png_structp png) { (void)png; }

// RGB and gray differ only in the colour type and the bytes a pixel.
static int encode(const uint8_t *pixels, int width, int height, int channels, int color_type, int level,
                  uint8_t **out, size_t *out_size, char *error, size_t error_size) {
    struct failure failure = {error, error_size};
    struct writer writer = {NULL, 0, 0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &failure, on_error, on_warning);
    if (!png) { snprintf(error, error_size, "out of memory"); return -1; }
    png_infop info = png_create_info_struct(png);
    if (!info || setjmp(png_jmpbuf(png))) {
        if (!info) snprintf(error, error_size, "out of memory");
        png_destroy_write_struct(&png, info ? &info : NULL);
        free(writer.data);
        return -1;
    }
    png_set_write_fn(png, &writer, write_bytes, flush_nothing);
    png_set_compression_level(png, level);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, color_type, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < height; y++) png_write_row(png, (png_const_bytep)(pixels + (size_t)y * width * channels));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    *out = writer.data;
    *out_size = writer.size;
    return 0;
}

int alexnet_png_encode_rgb(const uint8_t *pixels, int width, int height, int level, uint8_t **out,
                           size_t *out_size, char *error, size_t error_size) {
    return encode(pixels, width, height, 3, PNG_COLOR_TYPE_RGB, level, out, out_size, error, error_size);
}

int alexnet_png_encode_gray(const uint8_t *pixels, int width, int height, int level, uint8_t **out,
                            size_t *out_size, char *error, size_t error_size) {
    return encode(pixels, width, height, 1, PNG_COLOR_TYPE_GRAY, level, out, out_size, error, error_size);
}
