#ifndef SWITCHYARD_CCURL_SHIM_H
#define SWITCHYARD_CCURL_SHIM_H

#include <curl/curl.h>
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

#endif
