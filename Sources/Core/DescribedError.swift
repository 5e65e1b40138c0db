import Foundation

/// An error that describes itself: `description` names the file, key or value at fault and what
/// would fix it. Every error type of the library conforms, beside its own code. The conformance
/// also makes Foundation's `localizedDescription` (which code that formats an error through
/// Foundation uses) return that description: on Linux it would otherwise say "The operation
/// could not be completed (… error 1)".
public protocol DescribedError: LocalizedError, CustomStringConvertible {}

extension DescribedError {
    public var errorDescription: String? { description }
}
