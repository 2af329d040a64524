#if Kafka && RabbitMQ
    import ArgumentParser
    import Foundation
    import RabbitMQConnector
    import SwitchyardConfig
    import SwitchyardCore
    import SwitchyardRuntime

    /// `switchyard cutover` on a document whose `rabbitmq` source feeds the new system: nobody else
    /// may consume the queue, the bounded run drains it (it stops once the queue stayed empty for
    /// the source's quietPeriod), and the queue must be empty afterwards. A consumed queue keeps
    /// nothing to compare, so there is no reconciliation, and no consumer group to move: the
    /// applications move by reading the new system.
    enum RabbitMQCutover {
        /// The rabbitmq source and the target it feeds, when the document has no Kafka-to-Kafka
        /// bridge; nil otherwise.
        static func route(config: String, source: String?, target: String?) throws -> (ConnectorEntry, ConnectorEntry)? {
            let loader = DocumentLoader(registry: Families.registry(), interpolator: Interpolator(environment: environment()))
            guard let text = Interpolator.readFileContents(config) else {
                throw KafkaBridgeDocument.fail("\(config): cannot read the file")
            }
            guard case .success(let document) = loader.load(text) else { return nil }
            if document.sources.contains(where: { $0.kind == "kafka" }) { return nil }
            var pairs: [(ConnectorEntry, ConnectorEntry)] = []
            for route in document.routes {
                for from in route.from {
                    guard let entry = document.sources.first(where: { $0.name == from && $0.kind == "rabbitmq" }),
                        source == nil || source == from
                    else { continue }
                    for to in route.to where target == nil || target == to {
                        if let targetEntry = document.targets.first(where: { $0.name == to }),
                            !pairs.contains(where: { $0.0.name == from && $0.1.name == to })
                        {
                            pairs.append((entry, targetEntry))
                        }
                    }
                }
            }
            if pairs.count > 1 {
                throw KafkaBridgeDocument.fail(
                    "\(config): several routes from rabbitmq sources; choose one with "
                        + pairs.map { "--source \($0.0.name) --target \($0.1.name)" }.joined(separator: ", "))
            }
            return pairs.first
        }

        struct Report {
            var source: String
            var target: String
            var queue: String
            var queuedAtStart: Int?
            var queuedAfter: Int?
            var failure: (step: String, reason: String)?

            var json: JSONValue {
                .object([
                    "condition": .string(failure == nil ? "CutoverComplete" : "CutoverFailed"),
                    "source": .string(source), "target": .string(target), "queue": .string(queue),
                    "queuedAtStart": queuedAtStart.map { .int($0) } ?? .null, "queuedAfter": queuedAfter.map { .int($0) } ?? .null,
                    "copiedRecords": .int(queuedAtStart ?? 0), "groups": .array([]), "reconciliation": .null,
                    "failedStep": failure.map { .string($0.step) } ?? .null, "reason": failure.map { .string($0.reason) } ?? .null,
                ])
            }

            var text: String {
                var lines = ["cutover: source \(source) (queue \(queue)) -> target \(target)"]
                if let queuedAtStart { lines.append("  the queue held \(queuedAtStart) messages at the start") }
                if let failure {
                    lines.append("CutoverFailed at \(failure.step): \(failure.reason)")
                } else {
                    lines.append(
                        "CutoverComplete: queue '\(queue)' drained (\(queuedAtStart ?? 0) messages at the start, 0 left); a consumed queue keeps nothing to reconcile"
                    )
                }
                return lines.joined(separator: "\n") + "\n"
            }
        }

        static func run(_ command: CutoverCommand, source: ConnectorEntry, target: ConnectorEntry) async throws {
            if !command.groups.isEmpty {
                throw KafkaBridgeDocument.fail(
                    "cutover: source '\(source.name)' is a RabbitMQ queue, which has no consumer groups to move (--group); its consumers move by reading \(target.name)'s system. Nothing was done"
                )
            }
            var report = Report(source: source.name, target: target.name, queue: source.options.string("queue") ?? "")
            let probe = BlockingQueue(label: "switchyard.cutover.probe")
            do {
                let counts = try await probe.run { try RabbitMQQueueProbe.counts(source: source) }
                if counts.consumers > 0 {
                    throw KafkaBridgeDocument.fail(
                        "cutover: queue '\(report.queue)' has \(counts.consumers) consumer\(counts.consumers == 1 ? "" : "s"): a bridge (or another consumer) still reads it; stop it so that the cutover drains alone. Nothing was done"
                    )
                }
                report.queuedAtStart = counts.messages
            } catch let error as RabbitMQQueueProbe.Failure {
                throw KafkaBridgeDocument.fail("cutover: \(error.description). Nothing was done")
            }
            let status = await Application.run(
                configPath: command.bridge.config, registry: Families.registry(), environment: environment(), stopAtEnd: true)
            if status != 0 {
                report.failure = ("copy", "the bounded run exited with status \(status) (its log is above)")
            } else {
                do {
                    let after = try await probe.run { try RabbitMQQueueProbe.counts(source: source) }
                    report.queuedAfter = after.messages
                    if after.messages > 0 {
                        report.failure = (
                            "copy",
                            "queue '\(report.queue)' still holds \(after.messages) messages after the bounded run: producers still publish to it; move them first"
                        )
                    }
                } catch {
                    report.failure = ("copy", "\(error)")
                }
            }
            let json = report.json.rendered()
            if let path = command.report {
                do { try Data((json + "\n").utf8).write(to: URL(fileURLWithPath: path)) } catch {
                    printError("cutover: cannot write the report to \(path): \(error)")
                    throw ExitCode(1)
                }
            }
            print(command.output == .json ? json : report.text, terminator: command.output == .json ? "\n" : "")
            if report.failure != nil { throw ExitCode(1) }
        }
    }
#endif
