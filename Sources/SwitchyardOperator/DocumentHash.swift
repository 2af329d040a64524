import Crypto

/// Hex SHA-256 of the rendered document, for the hash annotation on the pod template.
enum DocumentHash {
    static func hex(_ input: [UInt8]) -> String {
        Crypto.SHA256.hash(data: input).map { byte in
            let digits: [Character] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "a", "b", "c", "d", "e", "f"]
            return String([digits[Int(byte >> 4)], digits[Int(byte & 15)]])
        }.joined()
    }
}
