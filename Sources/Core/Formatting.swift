import Foundation

/// `x` with `digits` decimals, for log lines.
public func fixed(_ x: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", x) }
