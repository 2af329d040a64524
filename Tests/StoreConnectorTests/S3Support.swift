import Foundation
import TestBedSupport
import Logging
import Testing
import SwitchyardCore
@testable import S3Connector

/// Helpers of the S3 target tests: the test bed's moto server (signatures enforced) and boto3
/// from `.state/venv` to create buckets and read objects back. Names are prefixed with S3 so
/// that they cannot clash with the other files of this test target.
enum S3Bed {
    static let repository: URL = {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url }
        }
        fatalError("Package.swift not found above \(#filePath)")
    }()

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    typealias Service = S3TestBed.Service
    typealias StoredObject = S3TestBed.StoredObject

    static func service() throws -> Service { try S3TestBed.service() }

    static let quiet = Logger(label: "switchyard.tests.s3", factory: { _ in SwiftLogNoOpLogHandler() })

    /// A fresh bucket name.
    static func bucketName(_ hint: String) -> String {
        "sy-\(hint)-\(UUID().uuidString.prefix(8).lowercased())"
    }

    /// Decodes `fields` with the s3 target's schema and validator, as the document loader does.
    static func options(_ fields: [(String, String)]) -> (values: OptionValues?, issues: [ConfigIssue]) {
        let kind = S3Connectors.family.targets[0]
        let entries = fields.map {
            ConfigNode.Entry(key: $0.0, keyLine: 1, value: ConfigNode(.scalar(.init(text: $0.1, quoted: true)), line: 1))
        }
        var decoder = OptionDecoder(connectorKinds: [:])
        guard let values = decoder.decodeObject(ConfigNode(.mapping(entries), line: 1), kind.options, path: "s3") else {
            return (nil, decoder.issues)
        }
        let issues = kind.validate?(values) ?? []
        return (issues.isEmpty ? values : nil, issues)
    }

    /// An s3 target on the test bed for `bucket`, with the test bed's key unless `fields` set one.
    static func target(bucket: String, _ fields: [(String, String)] = []) throws -> S3Target {
        let service = try service()
        var all: [(String, String)] = [("endpoint", service.endpoint), ("region", service.region), ("bucket", bucket)]
        if !fields.contains(where: { $0.0 == "accessKeyId" || $0.0 == "profile" }) {
            all += [("accessKeyId", service.accessKeyId), ("secretAccessKey", service.secretAccessKey)]
        }
        all += fields
        let decoded = options(all)
        guard let values = decoded.values else { throw Failure(description: "invalid options: \(decoded.issues)") }
        let made = try S3Connectors.family.targets[0].make(
            ConnectorSetup(name: "archive", options: values, logger: quiet, memoryLimit: 64 << 20))
        guard let target = made as? S3Target else { throw Failure(description: "not an S3Target") }
        return target
    }

    /// boto3 against the test bed's S3 server (see ``S3TestBed``).
    @discardableResult
    static func boto(_ arguments: String...) throws -> Any? { try S3TestBed.boto(arguments) }
    static func list(_ bucket: String) throws -> [String: Int] { try S3TestBed.list(bucket) }
    static func get(_ bucket: String, _ key: String) throws -> StoredObject { try S3TestBed.get(bucket, key) }
    static func getAll(_ bucket: String) throws -> [String: String] { try S3TestBed.getAll(bucket) }

    static func message(
        _ offset: Int64, partition: Int32 = 0, channel: String = "orders", value: String? = nil, timestamp: Int64 = 1_700_000_000_000,
        key: String? = nil, headers: [Header] = []
    ) -> Message {
        Message(
            key: key.map { Array($0.utf8) }, value: Array((value ?? #"{"id":\#(offset)}"#).utf8), headers: headers,
            channel: channel, timestamp: timestamp, partition: partition, offset: offset)
    }
}
