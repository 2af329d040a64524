#if Kafka && S3
    import KafkaConnector
    import S3Connector
    import Synchronization
    import SwitchyardCore

    /// The NDJSON lines an `s3` target wrote under a prefix, read as the target side of one source
    /// topic for `switchyard reconcile`: each line names its source position (channel, partition,
    /// offset), so a line of the topic is matched to its source record; a line of another channel
    /// is another topic's (not compared); a line that is not a Switchyard NDJSON line is extra.
    ///
    /// Blocking; used on the reconciler's thread.
    struct S3LineScanner: PartitionScanner {
        let reader: S3BucketReader
        let prefix: String
        let topic: String
        let headers: [String]
        /// The places of extra lines (object key and line number), the first `show` of them.
        let extras: ExtraPlaces

        final class ExtraPlaces: Sendable {
            let show: Int
            let places = Mutex<[String]>([])

            init(show: Int) { self.show = show }

            func note(_ place: String) {
                places.withLock { if $0.count < show && !$0.contains(place) { $0.append(place) } }
            }
        }

        /// One range covering every line: a bucket has no watermarks.
        func bounds() throws -> (start: Int64, end: Int64) { (0, 0) }

        /// Every line under the prefix; `offset` counts lines from 0 over all objects.
        func scan(from: Int64, to: Int64, _ body: (Int64, UInt64, RecordOrigin) -> Void) throws {
            var ordinal: Int64 = 0
            try reader.forEachObject(prefix: prefix) { key, content in
                var lineNumber = 0
                var start = 0
                while start < content.count {
                    let end = content[start...].firstIndex(of: 0x0A) ?? content.count
                    lineNumber += 1
                    defer { start = end + 1 }
                    if end == start { continue }
                    let decoded = content.withUnsafeBufferPointer { NDJSONLine.decode(UnsafeBufferPointer(rebasing: $0[start..<end])) }
                    guard let message = decoded else {
                        extras.note("\(key) line \(lineNumber): not an NDJSON line of a Switchyard target")
                        body(ordinal, 0, .none)
                        ordinal += 1
                        continue
                    }
                    let chosen: [[UInt8]?] = headers.map { name in message.headers.last { $0.name == name }?.value }
                    let hash = RecordDigest.hash(key: message.key, value: message.value, headers: chosen)
                    if message.channel == topic {
                        body(ordinal, hash, .position(partition: message.partition, offset: message.offset))
                    } else {
                        body(ordinal, hash, .other)
                    }
                    ordinal += 1
                }
            }
        }
    }
#endif
