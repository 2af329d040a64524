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

/* Decompresses gzip (or zlib) data, every member of it, into a buffer that grows as needed,
 * up to `limit` bytes. On success returns 0 and sets *out (malloc'd, free with free()) and
 * *out_length; returns Z_BUF_ERROR when the output would pass `limit`, Z_DATA_ERROR on
 * corrupt or truncated input, or another zlib error code. */
static inline int sy_gunzip(const uint8_t *data, size_t length, size_t limit, uint8_t **out, size_t *out_length) {
    z_stream stream;
    memset(&stream, 0, sizeof stream);
    int rc = inflateInit2(&stream, 15 + 32);
    if (rc != Z_OK) return rc;
    size_t capacity = length * 4 + 1024;
    if (capacity > limit + 1) capacity = limit + 1;
    uint8_t *buffer = (uint8_t *)malloc(capacity);
    if (buffer == NULL) {
        inflateEnd(&stream);
        return Z_MEM_ERROR;
    }
    size_t produced = 0;
    stream.next_in = (Bytef *)data;
    stream.avail_in = (uInt)length;
    for (;;) {
        if (produced == capacity) {
            if (capacity > limit) {
                free(buffer);
                inflateEnd(&stream);
                return Z_BUF_ERROR;
            }
            size_t grown = capacity * 2;
            if (grown > limit + 1) grown = limit + 1;
            uint8_t *larger = (uint8_t *)realloc(buffer, grown);
            if (larger == NULL) {
                free(buffer);
                inflateEnd(&stream);
                return Z_MEM_ERROR;
            }
            buffer = larger;
            capacity = grown;
        }
        stream.next_out = buffer + produced;
        stream.avail_out = (uInt)(capacity - produced);
        rc = inflate(&stream, Z_NO_FLUSH);
        produced = capacity - stream.avail_out;
        if (rc == Z_STREAM_END) {
            if (stream.avail_in == 0) break;
            /* Another gzip member follows. */
            if (inflateReset(&stream) != Z_OK) {
                free(buffer);
                inflateEnd(&stream);
                return Z_DATA_ERROR;
            }
            continue;
        }
        if (rc == Z_BUF_ERROR && stream.avail_in == 0) rc = Z_DATA_ERROR; /* truncated */
        if (rc != Z_OK && !(rc == Z_BUF_ERROR && stream.avail_out == 0)) {
            free(buffer);
            inflateEnd(&stream);
            return rc;
        }
    }
    inflateEnd(&stream);
    if (produced > limit) {
        free(buffer);
        return Z_BUF_ERROR;
    }
    *out = buffer;
    *out_length = produced;
    return 0;
}

#endif
