/* Commits consumer-group offsets from outside the groups, for the migration benchmark:
 *   commit-offsets BROKERS TOPIC PARTITIONS GROUPS PREFIX < lines
 * Each input line is "GROUP_INDEX PARTITION OFFSET"; group names are PREFIX<index>.
 * One client per group (group.id is a client property); exits non-zero on any failure. */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc != 6) { fprintf(stderr, "usage: commit-offsets BROKERS TOPIC PARTITIONS GROUPS PREFIX < lines\n"); return 2; }
    int partitions = atoi(argv[3]), groups = atoi(argv[4]);
    long long *offsets = calloc((size_t)groups * partitions, sizeof *offsets);
    for (long i = 0; i < (long)groups * partitions; i++) offsets[i] = -1;
    int g, p; long long o;
    while (scanf("%d %d %lld", &g, &p, &o) == 3) {
        if (g < 0 || g >= groups || p < 0 || p >= partitions) { fprintf(stderr, "bad line %d %d\n", g, p); return 1; }
        offsets[(long)g * partitions + p] = o;
    }
    char err[512], name[256];
    for (g = 0; g < groups; g++) {
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        snprintf(name, sizeof name, "%s%d", argv[5], g);
        if (rd_kafka_conf_set(conf, "bootstrap.servers", argv[1], err, sizeof err) ||
            rd_kafka_conf_set(conf, "group.id", name, err, sizeof err) ||
            rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err)) { fprintf(stderr, "%s\n", err); return 1; }
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
        if (!rk) { fprintf(stderr, "%s\n", err); return 1; }
        rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(partitions);
        for (p = 0; p < partitions; p++) {
            long long offset = offsets[(long)g * partitions + p];
            if (offset >= 0) rd_kafka_topic_partition_list_add(list, argv[2], p)->offset = offset;
        }
        rd_kafka_resp_err_t result = list->cnt ? rd_kafka_commit(rk, list, 0) : RD_KAFKA_RESP_ERR_NO_ERROR;
        if (result) { fprintf(stderr, "group %s: %s\n", name, rd_kafka_err2str(result)); return 1; }
        rd_kafka_topic_partition_list_destroy(list);
        rd_kafka_destroy(rk);
    }
    free(offsets);
    return 0;
}
