#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
import SwitchyardCore

/// The protocol version this build speaks (the `version` of Hello and Welcome).
let linkProtocolVersion: UInt32 = 1

/// The metadata key of the bearer token.
let linkAuthorizationKey = "authorization"

typealias WireRecord = Switchyard_Link_V1_Record
typealias WireHeader = Switchyard_Link_V1_Header
typealias WireBatch = Switchyard_Link_V1_Batch
typealias SenderFrame = Switchyard_Link_V1_SenderFrame
typealias ReceiverFrame = Switchyard_Link_V1_ReceiverFrame

enum LinkWire {
    /// The bytes a record is charged against the link's byte credit. Both ends compute it from
    /// the same fields, so a grant gives back exactly what a send took.
    static func chargedBytes(key: [UInt8]?, value: [UInt8], headers: [Header], channel: String) -> Int {
        var total = 16 + value.count + (key?.count ?? 0) + channel.utf8.count
        for header in headers { total += 8 + header.name.utf8.count + header.value.count }
        return total
    }

    static func chargedBytes(_ message: Message) -> Int {
        chargedBytes(key: message.key, value: message.value, headers: message.headers, channel: message.channel)
    }

    static func chargedBytes(_ record: WireRecord) -> Int {
        var total = 16 + record.value.count + (record.hasKey ? record.key.count : 0) + record.channel.utf8.count
        for header in record.headers { total += 8 + header.name.utf8.count + header.value.count }
        return total
    }

    static func record(_ message: Message) -> WireRecord {
        var record = WireRecord()
        if let key = message.key { record.key = Data(key) }
        record.value = Data(message.value)
        if !message.headers.isEmpty {
            record.headers = message.headers.map { header in
                var wire = WireHeader()
                wire.name = header.name
                wire.value = Data(header.value)
                return wire
            }
        }
        record.channel = message.channel
        record.timestamp = message.timestamp
        record.partition = message.partition
        record.offset = message.offset
        return record
    }

    /// The message a received record becomes; `offset` is the link sequence number, so the
    /// receiving side's acknowledgement ledger tracks link positions; `session` identifies the
    /// sender whose sequence it is.
    static func message(_ record: WireRecord, sequence: UInt64, session: UInt64) -> Message {
        Message(
            key: record.hasKey ? [UInt8](record.key) : nil,
            value: [UInt8](record.value),
            headers: record.headers.map { Header(name: $0.name, value: [UInt8]($0.value)) },
            channel: record.channel,
            timestamp: record.timestamp,
            partition: record.partition,
            offset: Int64(bitPattern: sequence),
            session: session
        )
    }
}
