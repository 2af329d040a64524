import SwitchyardCore
import Testing
@testable import KafkaConnector

/// Document validation of the `kafka` source and target options (no cluster needed).
@Suite("Kafka options validation")
struct KafkaValidationTests {
    func issues(_ role: ConnectorRole, _ options: Node) -> [ConfigIssue] {
        switch decode(role, options) {
        case .success: return []
        case .failure(let issues): return issues.list
        }
    }

    @Test func aMisspeltLibrdkafkaPropertyIsAnIssueWithItsPath() {
        let found = issues(
            .source,
            [
                "brokers": ["b:9092"], "topics": ["t"], "group": "g", "options": ["fetch.min.byts": "1", "fetch.min.bytes": "1"],
            ])
        #expect(found.map(\.path) == ["spec.sources[0].kafka.options.fetch.min.byts"])
        #expect(found.first?.message.contains("No such configuration property") == true)
    }

    @Test func anInvalidValueOfAKnownPropertyIsAnIssue() {
        let found = issues(.target, ["brokers": ["b:9092"], "topic": "t", "options": ["linger.ms": "soon"]])
        #expect(found.map(\.path) == ["spec.targets[0].kafka.options.linger.ms"])
    }

    @Test func missingBrokersAreAnIssue() {
        let found = issues(.source, ["topics": ["t"], "group": "g"])
        #expect(found.map(\.path) == ["spec.sources[0].kafka.brokers"])
    }

    @Test func anUnreadableTLSFileIsAnIssueWithItsPath() {
        let found = issues(
            .source,
            [
                "brokers": ["b:9093"], "topics": ["t"], "group": "g", "tls": ["ca": "/nonexistent/ca.pem"],
            ])
        #expect(found.map(\.path) == ["spec.sources[0].kafka.tls.ca"])
    }

    @Test func propertiesTheConnectorOwnsCannotBeOverridden() {
        let found = issues(
            .source,
            [
                "brokers": ["b:9092"], "topics": ["t"], "group": "g", "options": ["enable.auto.commit": "true"],
            ])
        #expect(found.map(\.path) == ["spec.sources[0].kafka.options.enable.auto.commit"])
    }

    @Test func acksOtherThanAllNeedIdempotenceOff() {
        #expect(issues(.target, ["brokers": ["b:9092"], "topic": "t", "acks": "1"]).map(\.path) == ["spec.targets[0].kafka.acks"])
        #expect(issues(.target, ["brokers": ["b:9092"], "topic": "t", "acks": "1", "idempotence": "false"]).isEmpty)
    }

    @Test func aBadPartitionChoiceIsAnIssue() {
        #expect(
            issues(.target, ["brokers": ["b:9092"], "topic": "t", "partition": "sideways"]).map(\.path) == [
                "spec.targets[0].kafka.partition"
            ])
        #expect(issues(.target, ["brokers": ["b:9092"], "topic": "t", "partition": "3"]).isEmpty)
    }

    @Test func createTopicsIsCheckedWithItsPaths() {
        func target(_ createTopics: Node, topic: Node = "mirror.{{ channel }}") -> [ConfigIssue] {
            issues(.target, ["brokers": ["b:9092"], "topic": topic, "createTopics": createTopics])
        }
        #expect(target(["configs": ["retention.ms"]]).isEmpty)
        #expect(target(["partitions": "12", "replicationFactor": "3"]).isEmpty)
        #expect(target(["partitions": "many"]).map(\.path) == ["spec.targets[0].kafka.createTopics.partitions"])
        #expect(target(["partitions": "0"]).map(\.path) == ["spec.targets[0].kafka.createTopics.partitions"])
        #expect(target(["replicationFactor": "0"]).map(\.path) == ["spec.targets[0].kafka.createTopics.replicationFactor"])
        let keyed = target(["partitions": "3"], topic: "t.{{ key }}")
        #expect(keyed.map(\.path) == ["spec.targets[0].kafka.createTopics"])
        #expect(keyed.first?.message.contains("constant or read only {{ channel }}") == true)
    }

    @Test func saslAndTLSBecomeLibrdkafkaProperties() throws {
        guard
            case .success(let entry) = decode(
                .source,
                [
                    "brokers": ["b1:9093", "b2:9093"], "topics": ["t"], "group": "g",
                    "sasl": ["mechanism": "SCRAM-SHA-512", "username": "u", "password": "p"], "tls": ["verifyHostname": "false"],
                ])
        else {
            Issue.record("should be valid")
            return
        }
        let properties = Dictionary(KafkaClientOptions.properties(entry.options), uniquingKeysWith: { $1 })
        #expect(properties["bootstrap.servers"] == "b1:9093,b2:9093")
        #expect(properties["security.protocol"] == "SASL_SSL")
        #expect(properties["sasl.mechanism"] == "SCRAM-SHA-512")
        #expect(properties["sasl.username"] == "u")
        #expect(properties["ssl.endpoint.identification.algorithm"] == "none")
    }
}
