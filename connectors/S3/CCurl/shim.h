#ifndef SWITCHYARD_CCURL_SHIM_H
#define SWITCHYARD_CCURL_SHIM_H

#include <curl/curl.h>
#include <zlib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* curl_easy_setopt is variadic and cannot be called from Swift: one typed wrapper per
 * argument type. */
static inline CURLcode sy_setopt_long(CURL *c, CURLoption o, long v) { return curl_easy_setopt(c, o, v); }
static inline CURLcode sy_setopt_string(CURL *c, CURLoption o, const char *v) { return curl_easy_setopt(c, o, v); }
static inline CURLcode sy_setopt_pointer(CURL *c, CURLoption o, void *v) { return curl_easy_setopt(c, o, v); }
static inline CURLcode sy_setopt_offset(CURL *c, CURLoption o, curl_off_t v) { return curl_easy_setopt(c, o, v); }
static inline CURLcode sy_setopt_slist(CURL *c, CURLoption o, struct curl_slist *v) { return curl_easy_setopt(c, o, v); }
static inline CURLcode sy_setopt_write_callback(CURL *c, CURLoption o, curl_write_callback v) { return curl_easy_setopt(c, o, v); }
static inline CURLcode sy_getinfo_long(CURL *c, CURLINFO i, long *v) { return curl_easy_getinfo(c, i, v); }

/* A non-NULL empty body: CURLOPT_POSTFIELDS must never be NULL, or curl reads the body from
 * its read callback (stdin by default). */
static inline const char *sy_empty_body(void) { return ""; }

/* SHA-256 (FIPS 180-4), for the x-amz-content-sha256 header that curl 7.88 does not send. */
typedef struct {
    uint32_t state[8];
    uint64_t length;
    uint8_t block[64];
    size_t used;
} sy_sha256_ctx;

static const uint32_t sy_sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define SY_ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static inline void sy_sha256_compress(uint32_t state[8], const uint8_t *p) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++) {
        w[i] = ((uint32_t)p[4 * i] << 24) | ((uint32_t)p[4 * i + 1] << 16) | ((uint32_t)p[4 * i + 2] << 8) | (uint32_t)p[4 * i + 3];
    }
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = SY_ROTR(w[i - 15], 7) ^ SY_ROTR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = SY_ROTR(w[i - 2], 17) ^ SY_ROTR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
    for (int i = 0; i < 64; i++) {
        uint32_t S1 = SY_ROTR(e, 6) ^ SY_ROTR(e, 11) ^ SY_ROTR(e, 25);
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t t1 = h + S1 + ch + sy_sha256_k[i] + w[i];
        uint32_t S0 = SY_ROTR(a, 2) ^ SY_ROTR(a, 13) ^ SY_ROTR(a, 22);
        uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
        uint32_t t2 = S0 + maj;
        h = g; g = f; f = e; e = d + t1;
        d = c; c = b; b = a; a = t1 + t2;
    }
    state[0] += a; state[1] += b; state[2] += c; state[3] += d;
    state[4] += e; state[5] += f; state[6] += g; state[7] += h;
}

/* Writes the 32-byte digest of `length` bytes at `data` to `digest`. */
static inline void sy_sha256(const uint8_t *data, size_t length, uint8_t digest[32]) {
    uint32_t state[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    size_t offset = 0;
    while (length - offset >= 64) {
        sy_sha256_compress(state, data + offset);
        offset += 64;
    }
    uint8_t tail[128];
    size_t rest = length - offset;
    if (rest > 0) memcpy(tail, data + offset, rest);
    tail[rest] = 0x80;
    size_t total = rest + 1 + 8 <= 64 ? 64 : 128;
    memset(tail + rest + 1, 0, total - rest - 1);
    uint64_t bits = (uint64_t)length * 8;
    for (int i = 0; i < 8; i++) tail[total - 1 - i] = (uint8_t)(bits >> (8 * i));
    sy_sha256_compress(state, tail);
    if (total == 128) sy_sha256_compress(state, tail + 64);
    for (int i = 0; i < 8; i++) {
        digest[4 * i] = (uint8_t)(state[i] >> 24);
        digest[4 * i + 1] = (uint8_t)(state[i] >> 16);
        digest[4 * i + 2] = (uint8_t)(state[i] >> 8);
        digest[4 * i + 3] = (uint8_t)state[i];
    }
}

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
