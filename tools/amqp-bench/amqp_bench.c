/*
 * amqp-bench: the reference AMQP client of Switchyard's RabbitMQ benchmarks, on rabbitmq-c
 * (the library the rabbitmq connectors use), with no routing core in between.
 *
 *   amqp-bench publish URL QUEUE COUNT SIZE   declare QUEUE (durable) and publish COUNT messages
 *                                              of SIZE bytes to it, with publisher confirms,
 *                                              up to 1000 unconfirmed at a time
 *   amqp-bench consume URL QUEUE COUNT PREFETCH
 *                                              consume COUNT messages with basic.qos PREFETCH and
 *                                              a basic.ack for every message, then print
 *                                              "SECONDS MESSAGES" (from the first delivery)
 *   amqp-bench count URL QUEUE                 print the queue's ready message count
 *                                              (passive queue.declare)
 *
 * Build: gcc -O2 -o amqp-bench amqp_bench.c $(pkg-config --cflags --libs librabbitmq)
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>

static void die(const char *what) {
    fprintf(stderr, "amqp-bench: %s\n", what);
    exit(1);
}

static void check_reply(amqp_rpc_reply_t reply, const char *what) {
    if (reply.reply_type == AMQP_RESPONSE_NORMAL)
        return;
    if (reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) {
        fprintf(stderr, "amqp-bench: %s: %s\n", what, amqp_error_string2(reply.library_error));
    } else if (reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        amqp_channel_close_t *close = reply.reply.decoded;
        fprintf(stderr, "amqp-bench: %s: channel closed: %.*s\n", what, (int)close->reply_text.len,
                (char *)close->reply_text.bytes);
    } else {
        fprintf(stderr, "amqp-bench: %s: server error\n", what);
    }
    exit(1);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static amqp_connection_state_t connect_to(const char *url_text) {
    struct amqp_connection_info info;
    char *url = strdup(url_text);
    amqp_default_connection_info(&info);
    if (amqp_parse_url(url, &info) != AMQP_STATUS_OK)
        die("cannot parse the URL");
    amqp_connection_state_t conn = amqp_new_connection();
    amqp_socket_t *socket = amqp_tcp_socket_new(conn);
    if (!socket)
        die("cannot create a socket");
    if (amqp_socket_open(socket, info.host, info.port) != AMQP_STATUS_OK)
        die("cannot connect");
    check_reply(amqp_login(conn, info.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, info.user, info.password),
                "login");
    amqp_channel_open(conn, 1);
    check_reply(amqp_get_rpc_reply(conn), "channel.open");
    free(url);
    return conn;
}

static void close_connection(amqp_connection_state_t conn) {
    amqp_channel_close(conn, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(conn);
}

/* Waits for one publisher confirm; returns how many messages it confirms. */
static long wait_confirm(amqp_connection_state_t conn, long confirmed) {
    amqp_frame_t frame;
    if (amqp_simple_wait_frame(conn, &frame) != AMQP_STATUS_OK)
        die("waiting for a confirm failed");
    if (frame.frame_type != AMQP_FRAME_METHOD)
        return 0;
    if (frame.payload.method.id == AMQP_BASIC_NACK_METHOD)
        die("a publish was nacked");
    if (frame.payload.method.id != AMQP_BASIC_ACK_METHOD)
        return 0;
    amqp_basic_ack_t *ack = frame.payload.method.decoded;
    long tag = (long)ack->delivery_tag;
    return ack->multiple ? tag - confirmed : 1;
}

static int publish(const char *url, const char *queue, long count, long size) {
    amqp_connection_state_t conn = connect_to(url);
    amqp_queue_declare(conn, 1, amqp_cstring_bytes(queue), 0, 1, 0, 0, amqp_empty_table);
    check_reply(amqp_get_rpc_reply(conn), "queue.declare");
    amqp_confirm_select(conn, 1);
    check_reply(amqp_get_rpc_reply(conn), "confirm.select");
    char *body = malloc(size > 0 ? size : 1);
    memset(body, 'x', size);
    amqp_basic_properties_t props;
    props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
    props.delivery_mode = 2;
    long sent = 0, confirmed = 0;
    while (confirmed < count) {
        while (sent < count && sent - confirmed < 1000) {
            int n = snprintf(body, size, "%ld ", sent);
            if (n < size)
                body[n] = 'x';
            amqp_bytes_t message = {.len = (size_t)size, .bytes = body};
            if (amqp_basic_publish(conn, 1, amqp_empty_bytes, amqp_cstring_bytes(queue), 0, 0, &props, message) !=
                AMQP_STATUS_OK)
                die("publish failed");
            sent++;
        }
        confirmed += wait_confirm(conn, confirmed);
    }
    free(body);
    close_connection(conn);
    return 0;
}

static int consume(const char *url, const char *queue, long count, int prefetch) {
    amqp_connection_state_t conn = connect_to(url);
    amqp_basic_qos(conn, 1, 0, (uint16_t)prefetch, 0);
    check_reply(amqp_get_rpc_reply(conn), "basic.qos");
    amqp_basic_consume(conn, 1, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
    check_reply(amqp_get_rpc_reply(conn), "basic.consume");
    long received = 0;
    double first = 0;
    while (received < count) {
        amqp_envelope_t envelope;
        amqp_maybe_release_buffers(conn);
        amqp_rpc_reply_t reply = amqp_consume_message(conn, &envelope, NULL, 0);
        check_reply(reply, "consume");
        if (received == 0)
            first = now();
        if (amqp_basic_ack(conn, 1, envelope.delivery_tag, 0) != AMQP_STATUS_OK)
            die("basic.ack failed");
        amqp_destroy_envelope(&envelope);
        received++;
    }
    double seconds = now() - first;
    printf("%.3f %ld\n", seconds, received);
    close_connection(conn);
    return 0;
}

static int count_queue(const char *url, const char *queue) {
    amqp_connection_state_t conn = connect_to(url);
    amqp_queue_declare_ok_t *ok = amqp_queue_declare(conn, 1, amqp_cstring_bytes(queue), 1, 0, 0, 0, amqp_empty_table);
    check_reply(amqp_get_rpc_reply(conn), "queue.declare (passive)");
    printf("%u\n", ok->message_count);
    close_connection(conn);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 6 && !strcmp(argv[1], "publish"))
        return publish(argv[2], argv[3], atol(argv[4]), atol(argv[5]));
    if (argc == 6 && !strcmp(argv[1], "consume"))
        return consume(argv[2], argv[3], atol(argv[4]), atoi(argv[5]));
    if (argc == 4 && !strcmp(argv[1], "count"))
        return count_queue(argv[2], argv[3]);
    fprintf(stderr, "usage: amqp-bench publish URL QUEUE COUNT SIZE | consume URL QUEUE COUNT PREFETCH | count URL QUEUE\n");
    return 2;
}
