/*
 * kafka-mock: run librdkafka's mock Kafka cluster as a process of its own.
 *
 * The mock cluster (rdkafka_mock.h) speaks the real Kafka protocol over TCP on loopback:
 * produce, fetch, metadata, consumer groups, offset commits, idempotence, transactions.
 * Everything lives in memory and is lost when the process ends.
 *
 *   kafka-mock [--brokers N] [--topic NAME:PARTITIONS]... [--port-file PATH] [--debug CTX]
 *              [--control]
 *
 * Once the cluster is up, the bootstrap list ("127.0.0.1:p1,127.0.0.1:p2,...") is printed as
 * the first line on stdout (flushed) and, with --port-file, written to PATH (atomically: a
 * temporary file renamed into place, so a reader never sees half a line). The process then
 * waits for SIGTERM or SIGINT, destroys the cluster and exits 0.
 *
 * Topics that a client asks for and that do not exist are created automatically with 4
 * partitions and a replication factor of min(3, brokers) (librdkafka 2.0.2 has no public way
 * to change that default): create the topics a test relies on with --topic instead.
 *
 * With --control, fault injection commands are read from stdin, one per line, each answered
 * with "ok" or "error: ..." on stdout (flushed):
 *   down ID                   broker ID stops answering (its connections are closed)
 *   up ID                     broker ID is back
 *   errors APIKEY COUNT CODE  the next COUNT requests of API key APIKEY (1 Fetch, 0 Produce,
 *                             8 OffsetCommit, 3 Metadata, ...) fail with error CODE
 *
 * Build: gcc -O2 -o kafka-mock kafka_mock.c $(pkg-config --cflags --libs rdkafka)
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>

#define MAX_TOPICS 64

struct topic_spec {
    char *name;
    int partitions;
};

/* Reads fault injection commands from stdin until end of file (see the top of this file). */
static void *control_loop(void *arg) {
    rd_kafka_mock_cluster_t *mcluster = arg;
    char line[256];
    while (fgets(line, sizeof(line), stdin)) {
        int id, apikey, count, code;
        rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
        if (sscanf(line, "down %d", &id) == 1) {
            err = rd_kafka_mock_broker_set_down(mcluster, id);
        } else if (sscanf(line, "up %d", &id) == 1) {
            err = rd_kafka_mock_broker_set_up(mcluster, id);
        } else if (sscanf(line, "errors %d %d %d", &apikey, &count, &code) == 3 && count > 0 && count <= 100000) {
            rd_kafka_resp_err_t *errors = calloc((size_t)count, sizeof(*errors));
            for (int i = 0; i < count; i++)
                errors[i] = (rd_kafka_resp_err_t)code;
            rd_kafka_mock_push_request_errors_array(mcluster, (int16_t)apikey, (size_t)count, errors);
            free(errors);
        } else {
            printf("error: unknown command\n");
            fflush(stdout);
            continue;
        }
        if (err)
            printf("error: %s\n", rd_kafka_err2str(err));
        else
            printf("ok\n");
        fflush(stdout);
    }
    return NULL;
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: kafka-mock [--brokers N] [--topic NAME:PARTITIONS]... [--port-file PATH]\n"
            "                  [--debug CONTEXTS]\n"
            "  --brokers N               number of brokers (default 3, ids 1..N)\n"
            "  --topic NAME:PARTITIONS   create a topic up front (repeatable); replication\n"
            "                            factor is min(3, N)\n"
            "  --port-file PATH          also write the bootstrap list to PATH\n"
            "  --debug CONTEXTS          librdkafka debug contexts for the host handle (e.g. mock)\n"
            "  --control                 read fault injection commands from stdin (down ID, up ID,\n"
            "                            errors APIKEY COUNT CODE); each is answered ok or error\n"
            "Prints the bootstrap list on stdout, then runs until SIGTERM or SIGINT.\n");
}

/* Parse a positive int no larger than max; returns -1 when invalid. */
static int parse_count(const char *s, int max) {
    char *end;
    long v;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > max)
        return -1;
    return (int)v;
}

static int write_port_file(const char *path, const char *bootstraps) {
    char tmp[PATH_MAX];
    FILE *f;
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
        fprintf(stderr, "kafka-mock: --port-file path too long\n");
        return -1;
    }
    if (!(f = fopen(tmp, "w"))) {
        fprintf(stderr, "kafka-mock: cannot write %s: %s\n", tmp, strerror(errno));
        return -1;
    }
    fprintf(f, "%s\n", bootstraps);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "kafka-mock: cannot write %s: %s\n", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    int brokers = 3;
    const char *port_file = NULL, *debug = NULL;
    struct topic_spec topics[MAX_TOPICS];
    int topic_cnt = 0, control = 0;
    char errstr[512];

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--control")) {
            control = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "kafka-mock: %s: missing value or unknown option\n", a);
            usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--brokers")) {
            if ((brokers = parse_count(v, 100)) < 0) {
                fprintf(stderr, "kafka-mock: --brokers: expected 1..100, got '%s'\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--topic")) {
            const char *colon = strrchr(v, ':');
            int parts;
            if (!colon || colon == v || (parts = parse_count(colon + 1, 10000)) < 0) {
                fprintf(stderr, "kafka-mock: --topic: expected NAME:PARTITIONS, got '%s'\n", v);
                return 2;
            }
            if (topic_cnt == MAX_TOPICS) {
                fprintf(stderr, "kafka-mock: at most %d --topic options\n", MAX_TOPICS);
                return 2;
            }
            topics[topic_cnt].name = strndup(v, (size_t)(colon - v));
            topics[topic_cnt].partitions = parts;
            topic_cnt++;
        } else if (!strcmp(a, "--port-file")) {
            port_file = v;
        } else if (!strcmp(a, "--debug")) {
            debug = v;
        } else {
            fprintf(stderr, "kafka-mock: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
    }

    /* Block the stop signals before librdkafka starts its threads (they inherit the mask),
     * so that only sigwait() below receives them. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

    /* The mock cluster needs a client handle to host it; a producer with no brokers of its
     * own is enough (it just sits idle). */
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* Quiet the notice about the host handle having no bootstrap.servers of its own. */
    if (!debug)
        rd_kafka_conf_set(conf, "log_level", "4", errstr, sizeof(errstr));
    if (debug && rd_kafka_conf_set(conf, "debug", debug, errstr, sizeof(errstr)) !=
                     RD_KAFKA_CONF_OK) {
        fprintf(stderr, "kafka-mock: --debug: %s\n", errstr);
        return 2;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "kafka-mock: rd_kafka_new: %s\n", errstr);
        return 1;
    }

    rd_kafka_mock_cluster_t *mcluster = rd_kafka_mock_cluster_new(rk, brokers);
    if (!mcluster) {
        fprintf(stderr, "kafka-mock: could not create a mock cluster of %d brokers\n", brokers);
        rd_kafka_destroy(rk);
        return 1;
    }

    int replication = brokers < 3 ? brokers : 3;
    for (int i = 0; i < topic_cnt; i++) {
        rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(mcluster, topics[i].name,
                                                             topics[i].partitions, replication);
        if (err) {
            fprintf(stderr, "kafka-mock: creating topic %s: %s\n", topics[i].name,
                    rd_kafka_err2str(err));
            rd_kafka_mock_cluster_destroy(mcluster);
            rd_kafka_destroy(rk);
            return 1;
        }
        free(topics[i].name);
    }

    const char *bootstraps = rd_kafka_mock_cluster_bootstraps(mcluster);
    if (port_file && write_port_file(port_file, bootstraps) != 0) {
        rd_kafka_mock_cluster_destroy(mcluster);
        rd_kafka_destroy(rk);
        return 1;
    }
    printf("%s\n", bootstraps);
    fflush(stdout);
    pthread_t control_thread;
    if (control && pthread_create(&control_thread, NULL, control_loop, mcluster) != 0) {
        fprintf(stderr, "kafka-mock: cannot start the control thread\n");
        return 1;
    }

    int sig = 0;
    while (sigwait(&stop_signals, &sig) != 0)
        ;
    fprintf(stderr, "kafka-mock: got signal %d, shutting down\n", sig);

    rd_kafka_mock_cluster_destroy(mcluster);
    rd_kafka_destroy(rk);
    if (port_file)
        unlink(port_file);
    return 0;
}
