import Foundation

/// `x` with `digits` decimals, for log lines.
package func fixed(_ x: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", x) }
