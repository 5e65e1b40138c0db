import AlexNetCore
import AlexNetData
import AlexNetKernels
import AlexNetModel
import AlexNetTraining
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

// MARK: JSON output

/// The `--json` line of every command: `value` through JSONEncoder, on one line, keys sorted
/// (JSONEncoder's order is otherwise not fixed from run to run) and '/' unescaped in paths.
func jsonLine<T: Encodable>(_ value: T) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    // Every value here is a number, string, list or null, which JSONEncoder always encodes.
    guard let data = try? encoder.encode(value) else { return "null" }
    return String(decoding: data, as: UTF8.self)
}

/// A value that is JSON null when absent, where an optional would drop the key: every `--json`
/// object has all its keys. A non-finite number is null too (JSON has no NaN or infinity).
struct JSONNullable<Value: Encodable>: Encodable {
    let value: Value?
    init(_ value: Value?) { self.value = value }

    func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        if let d = value as? Double, !d.isFinite { return try c.encodeNil() }
        if let value { try c.encode(value) } else { try c.encodeNil() }
    }
}

/// `x` rounded to `digits` decimals, for JSON numbers that should not carry timing noise.
func rounded(_ x: Double, _ digits: Int) -> JSONNullable<Double> {
    let scale = pow(10, Double(digits))
    return JSONNullable((x * scale).rounded() / scale)
}

// MARK: errors

/// The weights a command was given (`LoadedWeights`), or a usage error naming the file once
/// (most of the library's errors start with the path already) after the flag that gave it.
func loadWeights(_ path: String, variant: Variant?, flag: String? = nil) throws -> LoadedWeights {
    do { return try LoadedWeights(path: path, variant: variant) } catch {
        let text = "\(error)"
        throw usageError((flag.map { "\($0) " } ?? "") + (text.hasPrefix(path) ? text : "\(path): \(text)"))
    }
}

/// Runs a library check inside a command's `validate()`, turning what it throws (a `LimitError`
/// naming the flag and the range) into the ValidationError that ArgumentParser reports with
/// the usage line.
func validating(_ check: () throws -> Void) throws {
    do { try check() } catch { throw ValidationError("\(error)") }
}

/// Stops a command over a bad input (a configuration, a weights file, an image) with the message
/// alone on stderr and exit status 64, as argument errors have, without the usage text that
/// ValidationError adds (the message names the file, key or value at fault).
func usageError(_ error: Any) -> ExitCode {
    FileHandle.standardError.write(Data("Error: \(oneLine(describe(error)))\n".utf8))
    return ExitCode.validationFailure
}

/// Ends the process over an error a command's `run` threw: ArgumentParser's own errors and exit
/// codes as it handles them; anything else as "Error: <cause>" on one line, with exit status 64
/// for a count or size out of range (a usage error, as the flags' own checks give) and 1 for
/// everything else.
func reportFailure(_ error: Error) -> Never {
    // ArgumentParser's internal errors (the `help` subcommand throws its help request) have no
    // public type to match: they are recognised by their module.
    let argumentParserError = String(reflecting: type(of: error)).hasPrefix("ArgumentParser.")
    switch error {
    case _ where argumentParserError, is ExitCode, is CleanExit, is ValidationError:
        AlexNetCommand.exit(withError: error)
    case let e as LimitError:
        FileHandle.standardError.write(Data("Error: \(oneLine(e.description))\n".utf8))
        Foundation.exit(ExitCode.validationFailure.rawValue)
    default:
        FileHandle.standardError.write(Data("Error: \(oneLine(describe(error)))\n".utf8))
        Foundation.exit(EXIT_FAILURE)
    }
}

/// What an error says, in its own words: the description of this project's errors (each names
/// the file, key or value at fault); for Foundation's errors the file and the system's reason.
func describe(_ error: Any) -> String {
    if let e = error as? any Error { return FileIO.describe(e, path: true) }
    return "\(error)"
}

/// A message on one line: a newline inside would split "Error: …" from its cause.
func oneLine(_ s: String) -> String {
    s.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
}

// MARK: enumerations parsed by ArgumentParser (their values are listed in --help)

extension Variant: ExpressibleByArgument {}
extension Preprocessor.Format: ExpressibleByArgument {}
extension DatasetLayout: ExpressibleByArgument {}

func pad(_ s: String, _ width: Int) -> String {
    s.count >= width ? s + " " : s + String(repeating: " ", count: width - s.count)
}
