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

    /// The S3 lines of `.state/services.env`, read again at each call (a restart of moto makes
    /// a new key).
    struct Service: Sendable {
        var endpoint: String
        var region: String
        var accessKeyId: String
        var secretAccessKey: String
    }

    static func service() throws -> Service {
        let path = ServicesFile.root.appendingPathComponent(".state/services.env").path
        let values: [String: String]
        do { values = try ServicesFile.environment() } catch { throw Failure(description: error.description) }
        guard let endpoint = values["SWITCHYARD_S3_ENDPOINT"], let id = values["SWITCHYARD_S3_ACCESS_KEY_ID"],
              let secret = values["SWITCHYARD_S3_SECRET_ACCESS_KEY"] else {
            throw Failure(description: "the S3 server is not in \(path): run scripts/services start s3")
        }
        return Service(endpoint: endpoint, region: values["SWITCHYARD_S3_REGION"] ?? "us-east-1", accessKeyId: id, secretAccessKey: secret)
    }

    static let quiet = Logger(label: "switchyard.tests.s3", factory: { _ in SwiftLogNoOpLogHandler() })

    /// A fresh bucket name.
    static func bucketName(_ hint: String) -> String {
        "sy-\(hint)-\(UUID().uuidString.prefix(8).lowercased())"
    }

    /// Decodes `fields` with the s3 target's schema and validator, as the document loader does.
    static func options(_ fields: [(String, String)]) -> (values: OptionValues?, issues: [ConfigIssue]) {
        let kind = S3Connectors.family.targets[0]
        let entries = fields.map { ConfigNode.Entry(key: $0.0, keyLine: 1, value: ConfigNode(.scalar(.init(text: $0.1, quoted: true)), line: 1)) }
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
        let made = try S3Connectors.family.targets[0].make(ConnectorSetup(name: "archive", options: values, logger: quiet, memoryLimit: 64 << 20))
        guard let target = made as? S3Target else { throw Failure(description: "not an S3Target") }
        return target
    }

    /// boto3 (path-style, signed with the test bed's key) driven by a small script.
    static let script = #"""
import base64, gzip, hashlib, json, os, sys
import boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=os.environ["SY_E"], region_name=os.environ["SY_R"],
    aws_access_key_id=os.environ["SY_A"], aws_secret_access_key=os.environ["SY_S"],
    config=Config(s3={"addressing_style": "path"}))
command, bucket = sys.argv[1], sys.argv[2]
if command == "create":
    s3.create_bucket(Bucket=bucket)
elif command == "list":
    out, token = [], None
    while True:
        args = {"Bucket": bucket}
        if token: args["ContinuationToken"] = token
        page = s3.list_objects_v2(**args)
        out += [{"key": o["Key"], "size": o["Size"]} for o in page.get("Contents", [])]
        if not page.get("IsTruncated"): break
        token = page["NextContinuationToken"]
    print(json.dumps(out))
elif command == "get":
    answer = s3.get_object(Bucket=bucket, Key=sys.argv[3])
    body = answer["Body"].read()
    plain = gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body
    print(json.dumps({"size": len(body), "length": answer["ContentLength"], "contentType": answer.get("ContentType", ""),
        "gzip": body[:2] == b"\x1f\x8b", "sha256": hashlib.sha256(plain).hexdigest(), "plainSize": len(plain),
        "body": base64.b64encode(plain).decode() if len(plain) < 4000000 else ""}))
elif command == "getall":
    out = []
    for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        body = s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
        plain = gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body
        out.append({"key": o["Key"], "body": plain.decode()})
    print(json.dumps(out))
elif command == "delete":
    for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        s3.delete_object(Bucket=bucket, Key=o["Key"])
    s3.delete_bucket(Bucket=bucket)
"""#

    /// Runs the boto3 script and returns its parsed JSON output (nil when it prints nothing).
    @discardableResult
    static func boto(_ arguments: String...) throws -> Any? {
        let service = try service()
        let process = Process()
        process.executableURL = repository.appendingPathComponent(".state/venv/bin/python")
        process.arguments = ["-c", script] + arguments
        var environment = ProcessInfo.processInfo.environment
        environment["SY_E"] = service.endpoint
        environment["SY_R"] = service.region
        environment["SY_A"] = service.accessKeyId
        environment["SY_S"] = service.secretAccessKey
        process.environment = environment
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        let errorData = errors.fileHandleForReading.readDataToEndOfFile()
        guard (exitStatus(process) ?? 0) == 0 else {
            throw Failure(description: "boto3 \(arguments.joined(separator: " ")) failed: \(String(decoding: errorData, as: UTF8.self).suffix(600))")
        }
        if data.isEmpty { return nil }
        return try JSONSerialization.jsonObject(with: data)
    }

    /// The objects of `bucket`: key to stored size.
    static func list(_ bucket: String) throws -> [String: Int] {
        let items = try boto("list", bucket) as? [[String: Any]] ?? []
        var result: [String: Int] = [:]
        for item in items {
            if let key = item["key"] as? String, let size = item["size"] as? Int { result[key] = size }
        }
        return result
    }

    struct StoredObject {
        var size: Int
        var contentLength: Int
        var contentType: String
        var gzip: Bool
        var sha256: String
        var plainSize: Int
        var body: String
    }

    /// GetObject, decompressed when gzip.
    static func get(_ bucket: String, _ key: String) throws -> StoredObject {
        guard let item = try boto("get", bucket, key) as? [String: Any] else { throw Failure(description: "no answer for \(key)") }
        let body = Data(base64Encoded: item["body"] as? String ?? "") ?? Data()
        return StoredObject(
            size: item["size"] as? Int ?? -1, contentLength: item["length"] as? Int ?? -1,
            contentType: item["contentType"] as? String ?? "", gzip: item["gzip"] as? Bool ?? false,
            sha256: item["sha256"] as? String ?? "", plainSize: item["plainSize"] as? Int ?? -1,
            body: String(decoding: body, as: UTF8.self))
    }

    /// Every object of `bucket`, decompressed: key to text.
    static func getAll(_ bucket: String) throws -> [String: String] {
        let items = try boto("getall", bucket) as? [[String: Any]] ?? []
        var result: [String: String] = [:]
        for item in items {
            if let key = item["key"] as? String, let body = item["body"] as? String { result[key] = body }
        }
        return result
    }

    static func message(_ offset: Int64, partition: Int32 = 0, channel: String = "orders", value: String? = nil, timestamp: Int64 = 1_700_000_000_000, key: String? = nil, headers: [Header] = []) -> Message {
        Message(
            key: key.map { Array($0.utf8) }, value: Array((value ?? #"{"id":\#(offset)}"#).utf8), headers: headers,
            channel: channel, timestamp: timestamp, partition: partition, offset: offset)
    }
}
