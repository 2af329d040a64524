/// Headers added to a message sent to the dead-letter target.
public enum DeadLetterHeaders {
    public static let error = "switchyard-error"
    public static let errorKind = "switchyard-error-kind"
    public static let source = "switchyard-source"
    public static let target = "switchyard-target"
    public static let channel = "switchyard-channel"
    public static let partition = "switchyard-partition"
    public static let offset = "switchyard-offset"
}
