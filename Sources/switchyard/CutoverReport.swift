#if Kafka
    import KafkaConnector
    import SwitchyardConfig
    import SwitchyardCore

    /// What `switchyard cutover` did: the copied range, each group's translation, the
    /// reconciliation, and the step that failed, if one did.
    struct CutoverReport {
        var source: String
        var target: String
        var cluster: String
        var bridgeGroup: String
        var groups: [String]
        /// Membership checks the source cluster could not answer.
        var unchecked: [String] = []
        /// Each source partition's range when the cutover began.
        var ranges: [String: [Int32: KafkaCutoverChecks.Range]] = [:]
        /// The bridge group's committed offsets after the bounded copy.
        var copiedThrough: KafkaCutoverChecks.Offsets = [:]
        var translations: [OffsetTranslationReport] = []
        var reconciliation: ReconciliationReport?
        /// The step that failed (capture, copy, translate, reconcile) and why.
        var failure: (step: String, reason: String)?

        var isComplete: Bool { failure == nil && reconciliation?.isEqual == true && translations.count == groups.count }

        var copiedRecords: Int64 {
            var total: Int64 = 0
            for (topic, partitions) in ranges {
                for (partition, range) in partitions { total += max(0, (copiedThrough[topic]?[partition] ?? range.end) - range.start) }
            }
            return total
        }

        var text: String {
            var lines = ["cutover: source \(source) (cluster \(cluster), bridge group \(bridgeGroup)) -> target \(target)"]
            for topic in ranges.keys.sorted() {
                let partitions = ranges[topic]!.keys.sorted()
                let copied = partitions.map { partition -> String in
                    let range = ranges[topic]![partition]!
                    return "\(partition):\(copiedThrough[topic]?[partition].map(String.init) ?? "-")/\(range.end)"
                }
                lines.append("  copied \(topic) through (partition:committed/end at start) \(copied.joined(separator: " "))")
            }
            for warning in unchecked { lines.append("  not checked: \(warning)") }
            for translation in translations {
                let verdicts = Dictionary(grouping: translation.partitions, by: { OffsetsTranslate.verdictText($0.verdict) }).mapValues(
                    \.count)
                let summary = verdicts.keys.sorted().map { "\(verdicts[$0]!) \($0)" }.joined(separator: ", ")
                lines.append(
                    "  group \(translation.group): \(translation.applied ? "committed on \(target)" : "not committed") (\(summary))")
            }
            if let reconciliation {
                for topic in reconciliation.topics {
                    lines.append(
                        "  reconciled \(topic.sourceTopic) -> \(topic.targetTopic): \(topic.sourceRecords) source records, \(topic.targetRecords) target records: \(topic.isEqual ? "equal" : "DIFFERENT")"
                    )
                }
            }
            if let failure {
                lines.append("CutoverFailed at \(failure.step): \(failure.reason)")
            } else if isComplete {
                lines.append(
                    "CutoverComplete: \(copiedRecords) records copied, \(translations.count) group\(translations.count == 1 ? "" : "s") moved, target equal to source"
                )
            }
            return lines.joined(separator: "\n") + "\n"
        }

        var json: JSONValue {
            var copied: [String: JSONValue] = [:]
            for (topic, partitions) in ranges {
                copied[topic] = .array(
                    partitions.keys.sorted().map { partition in
                        let range = partitions[partition]!
                        let committed: JSONValue = copiedThrough[topic]?[partition].map { JSONValue.int(Int($0)) } ?? .null
                        let fields: [String: JSONValue] = [
                            "partition": .int(Int(partition)), "start": .int(Int(range.start)), "end": .int(Int(range.end)),
                            "committed": committed,
                        ]
                        return JSONValue.object(fields)
                    })
            }
            var fields: [String: JSONValue] = [
                "condition": .string(isComplete ? "CutoverComplete" : "CutoverFailed"),
                "source": .string(source), "target": .string(target), "cluster": .string(cluster), "bridgeGroup": .string(bridgeGroup),
            ]
            fields["groups"] = .array(groups.map { JSONValue.string($0) })
            fields["copiedRecords"] = .int(Int(copiedRecords))
            fields["unchecked"] = .array(unchecked.map { JSONValue.string($0) })
            fields["copied"] = .object(copied)
            fields["translations"] = .array(translations.map { OffsetsTranslate.json($0) })
            fields["reconciliation"] = reconciliation.map { ReconcileCommand.json($0) } ?? .null
            fields["failedStep"] = failure.map { JSONValue.string($0.step) } ?? .null
            fields["reason"] = failure.map { JSONValue.string($0.reason) } ?? .null
            return .object(fields)
        }
    }
#endif
