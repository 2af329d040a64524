import Foundation

/// The test bed's S3 server (moto, signatures enforced) as the test modules see it: its address
/// and key from `.state/services.env`, and boto3 from `.state/venv` to create buckets and read
/// objects back.
public enum S3TestBed {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// The S3 lines of `.state/services.env`, read again at each call (a restart of moto makes
    /// a new key).
    public struct Service: Sendable {
        public var endpoint: String
        public var region: String
        public var accessKeyId: String
        public var secretAccessKey: String
    }

    public static func service() throws -> Service {
        let path = ServicesFile.root.appendingPathComponent(".state/services.env").path
        let values: [String: String]
        do { values = try ServicesFile.environment() } catch { throw Failure(description: error.description) }
        guard let endpoint = values["SWITCHYARD_S3_ENDPOINT"], let id = values["SWITCHYARD_S3_ACCESS_KEY_ID"],
            let secret = values["SWITCHYARD_S3_SECRET_ACCESS_KEY"]
        else {
            throw Failure(description: "the S3 server is not in \(path): run scripts/services start s3")
        }
        return Service(endpoint: endpoint, region: values["SWITCHYARD_S3_REGION"] ?? "us-east-1", accessKeyId: id, secretAccessKey: secret)
    }

    /// boto3 (path-style, signed with the test bed's key) driven by a small script.
    public static let script = #"""
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
            for o in [o for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket) for o in page.get("Contents", [])]:
                body = s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
                plain = gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body
                out.append({"key": o["Key"], "body": plain.decode()})
            print(json.dumps(out))
        elif command == "put":
            s3.put_object(Bucket=bucket, Key=sys.argv[3], Body=base64.b64decode(sys.argv[4]))
        elif command == "delete":
            for o in [o for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket) for o in page.get("Contents", [])]:
                s3.delete_object(Bucket=bucket, Key=o["Key"])
            s3.delete_bucket(Bucket=bucket)
        """#

    /// Runs the boto3 script and returns its parsed JSON output (nil when it prints nothing).
    @discardableResult
    public static func boto(_ arguments: String...) throws -> Any? { try boto(arguments) }

    @discardableResult
    public static func boto(_ arguments: [String]) throws -> Any? {
        let service = try service()
        let process = Process()
        process.executableURL = ServicesFile.root.appendingPathComponent(".state/venv/bin/python")
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
        guard (ChildProcess.exitStatus(process) ?? 0) == 0 else {
            throw Failure(
                description: "boto3 \(arguments.joined(separator: " ")) failed: \(String(decoding: errorData, as: UTF8.self).suffix(600))")
        }
        if data.isEmpty { return nil }
        return try JSONSerialization.jsonObject(with: data)
    }

    /// The objects of `bucket`: key to stored size.
    public static func list(_ bucket: String) throws -> [String: Int] {
        let items = try boto("list", bucket) as? [[String: Any]] ?? []
        var result: [String: Int] = [:]
        for item in items {
            if let key = item["key"] as? String, let size = item["size"] as? Int { result[key] = size }
        }
        return result
    }

    public struct StoredObject: Sendable {
        public var size: Int
        public var contentLength: Int
        public var contentType: String
        public var gzip: Bool
        public var sha256: String
        public var plainSize: Int
        public var body: String
    }

    /// GetObject, decompressed when gzip.
    public static func get(_ bucket: String, _ key: String) throws -> StoredObject {
        guard let item = try boto("get", bucket, key) as? [String: Any] else { throw Failure(description: "no answer for \(key)") }
        let body = Data(base64Encoded: item["body"] as? String ?? "") ?? Data()
        return StoredObject(
            size: item["size"] as? Int ?? -1, contentLength: item["length"] as? Int ?? -1,
            contentType: item["contentType"] as? String ?? "", gzip: item["gzip"] as? Bool ?? false,
            sha256: item["sha256"] as? String ?? "", plainSize: item["plainSize"] as? Int ?? -1,
            body: String(decoding: body, as: UTF8.self))
    }

    /// PutObject of `body` as given (not compressed).
    public static func put(_ bucket: String, _ key: String, _ body: String) throws {
        try boto("put", bucket, key, Data(body.utf8).base64EncodedString())
    }

    /// Every object of `bucket`, decompressed: key to text.
    public static func getAll(_ bucket: String) throws -> [String: String] {
        let items = try boto("getall", bucket) as? [[String: Any]] ?? []
        var result: [String: String] = [:]
        for item in items {
            if let key = item["key"] as? String, let body = item["body"] as? String { result[key] = body }
        }
        return result
    }

}

/// Child processes of tests.
public enum ChildProcess {
    /// The exit status of a child whose output was read to the end, or nil when Foundation has
    /// not seen it exit within `limit` seconds (it can miss an exit when many children come and
    /// go; callers treat nil as "exited, status unknown").
    public static func exitStatus(_ process: Process, within limit: TimeInterval = 15) -> Int32? {
        let deadline = Date().addingTimeInterval(limit)
        while process.isRunning {
            if Date() > deadline { return nil }
            usleep(2_000)
        }
        return process.terminationStatus
    }
}
