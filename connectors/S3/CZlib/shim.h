#ifndef SWITCHYARD_CZLIB_SHIM_H
#define SWITCHYARD_CZLIB_SHIM_H

#include <zlib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Compresses `length` bytes into a gzip member (deflate with gzip window bits 15 + 16).
 * On success returns 0 and sets *out (malloc'd, free with free()) and *out_length; otherwise
 * returns the zlib error code. */
static inline int sy_gzip(const uint8_t *data, size_t length, int level, uint8_t **out, size_t *out_length) {
    z_stream stream;
    memset(&stream, 0, sizeof stream);
    int rc = deflateInit2(&stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    if (rc != Z_OK) return rc;
    size_t capacity = deflateBound(&stream, (uLong)length) + 32;
    uint8_t *buffer = (uint8_t *)malloc(capacity);
    if (buffer == NULL) {
        deflateEnd(&stream);
        return Z_MEM_ERROR;
    }
    stream.next_in = (Bytef *)data;
    stream.avail_in = (uInt)length;
    stream.next_out = buffer;
    stream.avail_out = (uInt)capacity;
    rc = deflate(&stream, Z_FINISH);
    if (rc != Z_STREAM_END) {
        deflateEnd(&stream);
        free(buffer);
        return rc == Z_OK ? Z_BUF_ERROR : rc;
    }
    *out = buffer;
    *out_length = stream.total_out;
    deflateEnd(&stream);
    return 0;
}

#endif
