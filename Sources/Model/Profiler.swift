import Foundation

/// Accumulated wall time per (layer, pass), for `alexnet bench --layers`.
public final class Profiler {
    public enum Pass: String, Sendable { case forward, backward, update }
    public private(set) var order: [String] = []
    public private(set) var seconds: [String: [Pass: Double]] = [:]

    public init() {}

    public func add(_ name: String, _ pass: Pass, since start: UInt64) {
        let dt = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        if seconds[name] == nil { order.append(name); seconds[name] = [:] }
        seconds[name]![pass, default: 0] += dt
    }

    public func reset() { order = []; seconds = [:] }
}
