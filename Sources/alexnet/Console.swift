import AlexNet
import ArgumentParser
import Foundation
import Logging

/// Log lines on stderr as "HH:MM:SS message" (warnings and errors say so), set up once per process.
struct ConsoleLogHandler: LogHandler {
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var now = time(nil)
        var parts = tm()
        localtime_r(&now, &parts)
        let stamp = String(format: "%02d:%02d:%02d", parts.tm_hour, parts.tm_min, parts.tm_sec)
        let level = event.level >= .warning ? "\(event.level): " : ""
        FileHandle.standardError.write(Data("\(stamp) \(level)\(event.message)\n".utf8))
    }

    private static let bootstrap: Void = LoggingSystem.bootstrap { _ in ConsoleLogHandler() }

    static func logger(_ label: String) -> Logger {
        _ = bootstrap
        return Logger(label: label)
    }
}

/// One JSON object on one line (the `--json` output of every command), keys in a fixed order.
func jsonLine(_ fields: [(String, Any)]) -> String {
    "{" + fields.map { key, value in "\"\(key)\": " + jsonValue(value) }.joined(separator: ", ") + "}"
}

func jsonValue(_ value: Any) -> String {
    switch value {
    case let s as String:
        let data = try? JSONSerialization.data(withJSONObject: [s], options: [.withoutEscapingSlashes])
        return data.map { String(decoding: $0.dropFirst().dropLast(), as: UTF8.self) } ?? "\"\""
    case let d as Double: return d.isFinite ? "\(d)" : "null"
    case let i as Int: return "\(i)"
    case let b as Bool: return b ? "true" : "false"
    case let pairs as [(String, Any)]: return jsonLine(pairs)
    case let list as [Any]: return "[" + list.map(jsonValue).joined(separator: ", ") + "]"
    case Optional<Any>.none: return "null"
    default: return "null"
    }
}

/// Stops a command over a bad input (a configuration, a weights file, an image) with the message
/// alone on stderr and exit status 64, as argument errors have, without the usage text that
/// ValidationError adds (the message names the file, key or value at fault).
func usageError(_ error: Any) -> ExitCode {
    FileHandle.standardError.write(Data("Error: \(error)\n".utf8))
    return ExitCode.validationFailure
}
