#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <amqp_ssl_socket.h>

/* amqp_login is variadic, which Swift does not import: a typed wrapper for PLAIN. */
static inline amqp_rpc_reply_t switchyard_amqp_login_plain(amqp_connection_state_t state, const char *vhost,
                                                           int channel_max, int frame_max, int heartbeat,
                                                           const char *user, const char *password) {
    return amqp_login(state, vhost, channel_max, frame_max, heartbeat, AMQP_SASL_METHOD_PLAIN, user, password);
}

/* Method numbers are macros with casts, which Swift does not import. */
enum {
    SWITCHYARD_AMQP_BASIC_DELIVER = AMQP_BASIC_DELIVER_METHOD,
    SWITCHYARD_AMQP_BASIC_ACK = AMQP_BASIC_ACK_METHOD,
    SWITCHYARD_AMQP_BASIC_NACK = AMQP_BASIC_NACK_METHOD,
    SWITCHYARD_AMQP_BASIC_RETURN = AMQP_BASIC_RETURN_METHOD,
    SWITCHYARD_AMQP_BASIC_CANCEL = AMQP_BASIC_CANCEL_METHOD,
    SWITCHYARD_AMQP_CHANNEL_CLOSE = AMQP_CHANNEL_CLOSE_METHOD,
    SWITCHYARD_AMQP_CHANNEL_CLOSE_OK = AMQP_CHANNEL_CLOSE_OK_METHOD,
    SWITCHYARD_AMQP_CONNECTION_CLOSE = AMQP_CONNECTION_CLOSE_METHOD,
    SWITCHYARD_AMQP_CONNECTION_CLOSE_OK = AMQP_CONNECTION_CLOSE_OK_METHOD,
    SWITCHYARD_AMQP_CONNECTION_BLOCKED = AMQP_CONNECTION_BLOCKED_METHOD,
    SWITCHYARD_AMQP_CONNECTION_UNBLOCKED = AMQP_CONNECTION_UNBLOCKED_METHOD,
};

/* Sends close-ok for a broker-initiated channel or connection close. */
static inline int switchyard_amqp_send_channel_close_ok(amqp_connection_state_t state, amqp_channel_t channel) {
    amqp_channel_close_ok_t ok;
    return amqp_send_method(state, channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
}

static inline int switchyard_amqp_send_connection_close_ok(amqp_connection_state_t state) {
    amqp_connection_close_ok_t ok;
    return amqp_send_method(state, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
}
